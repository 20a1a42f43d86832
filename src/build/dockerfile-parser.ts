// The Dockerfile's line grammar, as the classic builder reads it: parser directives at the top (escape, syntax,
// check), comments, line continuations with the escape token, the per-instruction argument forms (JSON array
// or shell form, key=value pairs, whitespace lists) and leading --flags. Heredocs are recognised only to
// refuse them (they need BuildKit).

import { InvalidParameterError } from '../errors.js';
import { ShellLex } from './shell-lex.js';

export interface DockerfileNode {
  /** The instruction as written (`run`, `RUN`, `Run`…). */
  cmd: string;
  /** The whole logical line, continuations joined. */
  original: string;
  /** Leading `--name[=value]` words. */
  flags: string[];
  /** The arguments in the instruction's form (ENV/LABEL: key, value, separator triples). */
  args: string[];
  /** Exec (JSON array) form. */
  json: boolean;
  /** ONBUILD's instruction. */
  sub?: DockerfileNode;
  startLine: number;
  endLine: number;
  /** The line uses heredoc syntax (`<<EOF`) where BuildKit would read one. */
  heredoc: boolean;
}

export interface ParsedDockerfile {
  nodes: DockerfileNode[];
  escapeToken: string;
  /** `# syntax=` directive value, when present (the classic builder ignores it). */
  syntax?: string;
  warnings: string[];
}

/** A parse failure with dockerd's text. */
export class DockerfileParseError extends InvalidParameterError {}

const WS = /[\t\v\f\r ]+/;
const DIRECTIVE_RE = /^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const HEREDOC_RE = /^(\d*)<<(-?)\s*([^<]*)$/;

type ArgParser = (rest: string, escape: string) => { args: string[]; json: boolean; sub?: DockerfileNode };

/** parseWords: splits on whitespace, keeping quotes (and escapes) in the words. */
export function parseWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  let blankOK = false;
  let buf = '';
  const chars = [...rest];
  for (let pos = 0; pos <= chars.length; pos++) {
    const ch = pos < chars.length ? (chars[pos] as string) : '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (/\s/u.test(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || buf.length > 0) words.push(buf);
      break;
    }
    if (phase === 'word') {
      if (/\s/u.test(ch)) {
        phase = 'spaces';
        if (blankOK || buf.length > 0) words.push(buf);
        buf = '';
        blankOK = false;
        continue;
      }
      let c = ch;
      if (c === "'" || c === '"') {
        quote = c;
        blankOK = true;
        phase = 'quote';
      }
      if (c === escape) {
        if (pos + 1 === chars.length) continue;
        buf += c;
        pos++;
        c = chars[pos] as string;
      }
      buf += c;
      continue;
    }
    // in quote
    let c = ch;
    if (c === quote) phase = 'word';
    if (c === escape && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      pos++;
      buf += c;
      c = chars[pos] as string;
    }
    buf += c;
  }
  return words;
}

function parseJson(rest: string): string[] | 'not-json' | 'not-strings' {
  const t = rest.replace(/^\s+/u, '');
  if (!t.startsWith('[')) return 'not-json';
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return 'not-json';
  }
  if (!Array.isArray(v)) return 'not-json';
  if (!v.every((x) => typeof x === 'string')) return 'not-strings';
  return v as string[];
}

const NOT_STRINGS = 'when using JSON array syntax, arrays must be comprised of strings only';

const maybeJson: ArgParser = (rest) => {
  if (rest === '') return { args: [], json: false };
  const j = parseJson(rest);
  if (j === 'not-strings') throw new Error(NOT_STRINGS);
  if (j !== 'not-json') return { args: j, json: true };
  return { args: [rest], json: false };
};

const whitespaceList: ArgParser = (rest) => ({ args: rest === '' ? [] : rest.split(WS), json: false });

const maybeJsonToList: ArgParser = (rest, escape) => {
  const j = parseJson(rest);
  if (j === 'not-strings') throw new Error(NOT_STRINGS);
  if (j !== 'not-json') return { args: j, json: true };
  return whitespaceList(rest, escape);
};

function nameVal(key: string): ArgParser {
  return (rest, escape) => {
    const words = parseWords(rest, escape);
    if (words.length === 0) return { args: [], json: false };
    if (!(words[0] as string).includes('=')) {
      const m = /^(\S+)[\t\v\f\r ]+([\s\S]*)$/.exec(rest);
      if (!m) throw new Error(`${key} must have two arguments`);
      return { args: [m[1] as string, m[2] as string, ''], json: false };
    }
    const args: string[] = [];
    for (const w of words) {
      const i = w.indexOf('=');
      if (i < 0) throw new Error(`Syntax error - can't find = in ${JSON.stringify(w)}. Must be of the form: name=value`);
      args.push(w.slice(0, i), w.slice(i + 1), '=');
    }
    return { args, json: false };
  };
}

const single: ArgParser = (rest) => ({ args: rest === '' ? [] : [rest], json: false });

const healthConfig: ArgParser = (rest, escape) => {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(rest);
  if (!m) return { args: [], json: false };
  const r = maybeJson(m[2] as string, escape);
  return { args: [m[1] as string, ...r.args], json: r.json };
};

const ARG_PARSERS: Record<string, ArgParser> = {
  add: maybeJsonToList,
  arg: (rest, escape) => ({ args: parseWords(rest, escape), json: false }),
  cmd: maybeJson,
  copy: maybeJsonToList,
  entrypoint: maybeJson,
  env: nameVal('ENV'),
  expose: whitespaceList,
  from: whitespaceList,
  healthcheck: healthConfig,
  label: nameVal('LABEL'),
  maintainer: single,
  onbuild: (rest, escape) => {
    if (rest === '') return { args: [], json: false };
    return { args: [], json: false, sub: nodeFromLine(rest, escape) };
  },
  run: maybeJson,
  shell: maybeJson,
  stopsignal: single,
  user: single,
  volume: maybeJsonToList,
  workdir: single,
};

/** Leading `--flag[=value]` words (quotes and escapes honoured); returns the flags and the rest of the line. */
function extractFlags(line: string, escape: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let i = 0;
  for (;;) {
    while (i < line.length && /\s/.test(line[i] as string)) i++;
    if (!line.startsWith('--', i)) break;
    let word = '';
    let quote = '';
    let j = i;
    for (; j < line.length; j++) {
      const c = line[j] as string;
      if (quote) {
        if (c === quote) quote = '';
        else if (c === escape && quote === '"' && j + 1 < line.length) word += line[++j];
        else word += c;
        continue;
      }
      if (/\s/.test(c)) break;
      if (c === '"' || c === "'") quote = c;
      else if (c === escape && j + 1 < line.length) word += line[++j];
      else word += c;
    }
    i = j;
    if (word === '--') break;
    flags.push(word);
  }
  return { flags, rest: line.slice(i) };
}

function nodeFromLine(line: string, escape: string): DockerfileNode {
  const trimmed = line.trim();
  const m = /^(\S+)(?:[\t\v\f\r ]+([\s\S]*))?$/.exec(trimmed);
  const cmd = m?.[1] ?? '';
  let flags: string[] = [];
  let rest = '';
  if (m?.[2] !== undefined) {
    const f = extractFlags(m[2], escape);
    flags = f.flags;
    rest = f.rest.trim();
  }
  const parser = ARG_PARSERS[cmd.toLowerCase()];
  const r = parser ? parser(rest, escape) : { args: [], json: false };
  const lower = cmd.toLowerCase();
  const heredoc = (lower === 'run' || lower === 'copy' || lower === 'add') && !r.json && hasHeredoc(rest);
  return {
    cmd,
    original: line,
    flags,
    args: r.args,
    json: r.json,
    ...(r.sub ? { sub: r.sub } : {}),
    startLine: 0,
    endLine: 0,
    heredoc: heredoc || (r.sub?.heredoc ?? false),
  };
}

function hasHeredoc(rest: string): boolean {
  if (!rest.includes('<<')) return false;
  for (const w of rest.split(/\s+/)) {
    const m = HEREDOC_RE.exec(w);
    if (m && /^["']?[A-Za-z_][\w.-]*["']?$/.test(m[3] ?? '')) return true;
  }
  return false;
}

function continuationRe(escape: string): RegExp {
  const e = escape === '`' ? '`' : '\\\\';
  return new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
}

const isComment = (line: string): boolean => /^\s*#/.test(line);

/** Parses a Dockerfile's text; errors carry dockerd's messages (with the line number where dockerd gives one). */
export function parseDockerfile(text: string): ParsedDockerfile {
  let escape = '\\';
  let contRe = continuationRe(escape);
  let syntax: string | undefined;
  const seen = new Set<string>();
  let directivesDone = false;
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines[0]?.startsWith('\ufeff')) lines[0] = lines[0].slice(1);
  const nodes: DockerfileNode[] = [];
  const warnings: string[] = [];
  let n = 0;

  const directive = (line: string): boolean => {
    if (directivesDone) return false;
    if (!line.startsWith('#')) {
      directivesDone = true;
      return false;
    }
    const m = DIRECTIVE_RE.exec(line.slice(1).replace(/^\s+/, ''));
    const key = m?.[1]?.toLowerCase();
    if (!m || (key !== 'syntax' && key !== 'escape' && key !== 'check')) {
      directivesDone = true;
      return false;
    }
    if (seen.has(key)) throw new DockerfileParseError(`dockerfile parse error on line ${n + 1}: only one ${key} parser directive can be used`);
    seen.add(key);
    const value = m[2] as string;
    if (key === 'escape') {
      if (value !== '`' && value !== '\\') throw new DockerfileParseError(`dockerfile parse error on line ${n + 1}: invalid escape token '${value}' does not match \` or \\`);
      escape = value;
      contRe = continuationRe(escape);
    } else if (key === 'syntax') syntax = value;
    return true;
  };

  const strip = (raw: string, left: boolean): string => {
    let t = raw.replace(/[\r\n]+$/, '');
    if (left) t = t.replace(/^\s+/u, '');
    return t;
  };

  while (n < lines.length) {
    let line = strip(lines[n] as string, true);
    directive(line);
    if (isComment(line)) line = '';
    n++;
    const startLine = n;
    let end = !contRe.test(line);
    if (!end) line = line.replace(contRe, '$1');
    if (end && line.length === 0) continue;
    let buf = line;
    let emptyContinuation = false;
    while (!end && n < lines.length) {
      const raw = strip(lines[n] as string, false);
      directive(raw);
      n++;
      if (isComment(raw)) continue;
      if (raw.trim() === '') {
        emptyContinuation = true;
        continue;
      }
      end = !contRe.test(raw);
      buf += end ? raw : raw.replace(contRe, '$1');
    }
    if (emptyContinuation) warnings.push(`Empty continuation line found in: ${buf}`);
    let node: DockerfileNode;
    try {
      node = nodeFromLine(buf, escape);
    } catch (e) {
      throw new DockerfileParseError(`dockerfile parse error on line ${startLine}: ${(e as Error).message}`);
    }
    node.startLine = startLine;
    node.endLine = n;
    nodes.push(node);
  }
  if (nodes.length === 0) throw new DockerfileParseError(`dockerfile parse error on line ${n}: file with no instructions`);
  return { nodes, escapeToken: escape, ...(syntax !== undefined ? { syntax } : {}), warnings };
}

/** dockerd's BuildKit lexer for one escape token (shared by the instruction layer). */
export function lexFor(escape: string): ShellLex {
  return new ShellLex(escape);
}
