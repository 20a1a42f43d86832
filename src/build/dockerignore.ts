// .dockerignore: reading the file and matching paths with Docker's exact rules (moby/patternmatcher): Go's
// filepath.Clean on every pattern, `**` for any number of directories, `!` exceptions applied in order, a
// leading `/` ignored, a pattern that matches a parent directory matching everything below it.

import { InvalidParameterError } from '../errors.js';

/** Go's path.Clean for slash-separated paths. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(c);
  }
  const s = out.join('/');
  if (rooted) return `/${s}`;
  return s === '' ? '.' : s;
}

/** Go's filepath.Dir. */
function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return cleanPath(i < 0 ? '' : p.slice(0, i + 1));
}

/** The patterns of a .dockerignore file (ignorefile.ReadAll): comments, blanks, cleaning, leading `/`. */
export function readIgnoreFile(text: string): string[] {
  const out: string[] = [];
  let first = true;
  for (let line of text.split('\n')) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (first && line.startsWith('\ufeff')) line = line.slice(1);
    first = false;
    if (line.startsWith('#')) continue;
    let pattern = line.trim();
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp';

class Pattern {
  readonly dirs: string[];
  private type: MatchType = 'exact';
  private re: RegExp | undefined;

  constructor(
    readonly cleaned: string,
    readonly exclusion: boolean,
  ) {
    this.dirs = cleaned.split('/');
    this.compile();
  }

  private compile(): void {
    let re = '^';
    let type: MatchType = 'exact';
    const p = this.cleaned;
    for (let i = 0; i < p.length; i++) {
      const start = i;
      const ch = p[i] as string;
      if (ch === '*') {
        if (p[i + 1] === '*') {
          i++;
          if (p[i + 1] === '/') i++;
          if (i + 1 >= p.length) {
            if (type === 'exact') type = 'prefix';
            else {
              re += '.*';
              type = 'regexp';
            }
          } else {
            re += '(.*/)?';
            type = 'regexp';
          }
          if (start === 0) type = 'suffix'; // `**` opening the pattern

        } else {
          re += '[^/]*';
          type = 'regexp';
        }
      } else if (ch === '?') {
        re += '[^/]';
        type = 'regexp';
      } else if ('.+()|{}$^'.includes(ch)) {
        re += `\\${ch}`;
      } else if (ch === '\\') {
        if (i + 1 < p.length) {
          re += `\\${p[++i] as string}`;
          type = 'regexp';
        } else re += '\\\\';
      } else if (ch === '[' || ch === ']') {
        re += ch;
        type = 'regexp';
      } else re += ch;
    }
    if (type === 'regexp') {
      try {
        this.re = new RegExp(`${re}$`, 's');
      } catch {
        throw new InvalidParameterError(`syntax error in pattern: ${this.cleaned}`);
      }
    }
    this.type = type;
  }

  match(path: string): boolean {
    switch (this.type) {
      case 'exact':
        return path === this.cleaned;
      case 'prefix':
        return path.startsWith(this.cleaned.slice(0, -2));
      case 'suffix': {
        const suffix = this.cleaned.slice(2);
        if (path.endsWith(suffix)) return true;
        return suffix.startsWith('/') && path === suffix.slice(1);
      }
      case 'regexp':
        return this.re?.test(path) ?? false;
    }
  }
}

/** Docker's PatternMatcher. */
export class PatternMatcher {
  private readonly patterns: Pattern[] = [];
  readonly exclusions: boolean;

  constructor(patterns: readonly string[]) {
    let exclusions = false;
    for (let p of patterns) {
      p = p.trim();
      if (p === '') continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p.startsWith('!')) {
        if (p.length === 1) throw new InvalidParameterError('illegal exclusion pattern: "!"');
        exclusion = true;
        exclusions = true;
        p = p.slice(1);
      }
      this.patterns.push(new Pattern(p, exclusion));
    }
    this.exclusions = exclusions;
  }

  /** Whether a (clean, relative) path is excluded; a pattern also matches through a parent of the same depth. */
  matches(file: string): boolean {
    return this.match(file, false);
  }

  /** Like matches, but any parent directory matching counts (dockerd's removal of Dockerfile/.dockerignore). */
  matchesOrParentMatches(file: string): boolean {
    return this.match(file, true);
  }

  private match(file: string, anyParent: boolean): boolean {
    let matched = false;
    const parent = dirOf(file);
    const parentDirs = parent.split('/');
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      let match = p.match(file);
      if (!match && parent !== '.') {
        if (anyParent) {
          for (let i = 0; i < parentDirs.length && !match; i++) match = p.match(parentDirs.slice(0, i + 1).join('/'));
        } else if (p.dirs.length <= parentDirs.length) {
          match = p.match(parentDirs.slice(0, p.dirs.length).join('/'));
        }
      }
      if (match) matched = !p.exclusion;
    }
    return matched;
  }
}

/** Whether `file` (relative to the context root) is excluded by the patterns. */
export function isExcluded(file: string, patterns: readonly string[]): boolean {
  const f = cleanPath(file);
  if (f === '.') return false;
  return new PatternMatcher(patterns).matches(f);
}
