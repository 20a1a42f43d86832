// Dockerfile word processing (the builder's shell lexer): quotes, the escape token, and variable substitution
// with $v, ${v}, ${v:-word}, ${v-word}, ${v:+word}, ${v+word}, ${v:?msg}, ${v?msg}. ProcessWord keeps one
// string; ProcessWords splits unquoted whitespace into words (EXPOSE, heredoc detection).

import { InvalidParameterError } from '../errors.js';

export type EnvLookup = (name: string) => string | undefined;

/** An environment from KEY=VALUE strings; later entries win, as in dockerd. */
export function envFromList(list: readonly string[]): EnvLookup {
  const m = new Map<string, string>();
  for (const e of list) {
    const i = e.indexOf('=');
    if (i < 0) m.set(e, '');
    else m.set(e.slice(0, i), e.slice(i + 1));
  }
  return (name) => m.get(name);
}

const EOF = '';

class Scanner {
  pos = 0;
  constructor(readonly s: string) {}
  peek(): string {
    if (this.pos >= this.s.length) return EOF;
    const cp = this.s.codePointAt(this.pos) as number;
    return String.fromCodePoint(cp);
  }
  next(): string {
    const c = this.peek();
    this.pos += c.length;
    return c;
  }
}

const isSpace = (c: string): boolean => c !== EOF && /\s/u.test(c);

class Words {
  private buf = '';
  private inWord = false;
  readonly words: string[] = [];
  addChar(ch: string): void {
    if (isSpace(ch) && this.inWord) {
      if (this.buf.length !== 0) {
        this.words.push(this.buf);
        this.buf = '';
        this.inWord = false;
      }
    } else if (!isSpace(ch)) this.addRawChar(ch);
  }
  addRawChar(ch: string): void {
    this.buf += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.buf += s;
    this.inWord = true;
  }
  get(): string[] {
    if (this.buf.length > 0) {
      this.words.push(this.buf);
      this.buf = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class LexError extends Error {}

/** The lexer for one escape token ('\\' or '`'). */
export class ShellLex {
  constructor(readonly escapeToken: string = '\\') {}

  /** One word with substitutions done and quotes removed; also the names that were looked up but unset. */
  processWord(word: string, env: EnvLookup): string {
    return this.run(word, env).result;
  }

  /** Like processWord but split into words on unquoted whitespace. */
  processWords(word: string, env: EnvLookup): string[] {
    return this.run(word, env).words;
  }

  private run(word: string, env: EnvLookup): { result: string; words: string[] } {
    const sc = new Scanner(word);
    try {
      return this.stopOn(sc, env, EOF);
    } catch (e) {
      if (e instanceof LexError) throw new InvalidParameterError(`failed to process ${JSON.stringify(word)}: ${e.message}`);
      throw e;
    }
  }

  private stopOn(sc: Scanner, env: EnvLookup, stop: string): { result: string; words: string[] } {
    let result = '';
    const words = new Words();
    while (sc.peek() !== EOF) {
      const ch = sc.peek();
      if (stop !== EOF && ch === stop) {
        sc.next();
        return { result, words: words.get() };
      }
      if (ch === '$') {
        const v = this.dollar(sc, env);
        result += v;
        words.addString(v);
      } else if (ch === "'") {
        const v = this.singleQuote(sc);
        result += v;
        words.addRawString(v);
      } else if (ch === '"') {
        const v = this.doubleQuote(sc, env);
        result += v;
        words.addRawString(v);
      } else {
        let c = sc.next();
        if (c === this.escapeToken) {
          c = sc.next();
          if (c === EOF) break;
          words.addRawChar(c);
        } else words.addChar(c);
        result += c;
      }
    }
    if (stop !== EOF) throw new LexError(`unexpected end of statement while looking for matching ${stop}`);
    return { result, words: words.get() };
  }

  private singleQuote(sc: Scanner): string {
    sc.next();
    let out = '';
    for (;;) {
      const c = sc.next();
      if (c === EOF) throw new LexError('unexpected end of statement while looking for matching single-quote');
      if (c === "'") return out;
      out += c;
    }
  }

  private doubleQuote(sc: Scanner, env: EnvLookup): string {
    sc.next();
    let out = '';
    for (;;) {
      const p = sc.peek();
      if (p === EOF) throw new LexError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        sc.next();
        return out;
      }
      if (p === '$') {
        out += this.dollar(sc, env);
        continue;
      }
      let c = sc.next();
      if (c === this.escapeToken) {
        const n = sc.peek();
        if (n === EOF) continue;
        if (n === '"' || n === '$' || n === this.escapeToken) c = sc.next();
      }
      out += c;
    }
  }

  private name(sc: Scanner): string {
    let name = '';
    while (sc.peek() !== EOF) {
      const ch = sc.peek();
      if (name.length === 0 && /\d/.test(ch)) {
        while (sc.peek() !== EOF && /\d/.test(sc.peek())) name += sc.next();
        return name;
      }
      if (name.length === 0 && '@*#?-$!0'.includes(ch)) return sc.next();
      if (!/[\p{L}\p{Nd}_]/u.test(ch)) break;
      name += sc.next();
    }
    return name;
  }

  private dollar(sc: Scanner, env: EnvLookup): string {
    sc.next();
    if (sc.peek() !== '{') {
      const name = this.name(sc);
      if (name === '') return '$';
      return env(name) ?? '';
    }
    sc.next();
    const p = sc.peek();
    if (p === EOF) throw new LexError("syntax error: missing '}'");
    if (p === '{' || p === '}' || p === ':') throw new LexError('syntax error: bad substitution');
    const name = this.name(sc);
    let ch = sc.next();
    let mod = ch;
    if (ch === EOF) throw new LexError("syntax error: missing '}'");
    if (ch === '}') return env(name) ?? '';
    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = sc.next();
      mod += ch;
    }
    if (ch !== '+' && ch !== '-' && ch !== '?') throw new LexError(`unsupported modifier (${mod}) in substitution`);
    let word: string;
    try {
      word = this.stopOn(sc, env, '}').result;
    } catch (e) {
      if (sc.peek() === EOF) throw new LexError("syntax error: missing '}'");
      throw e;
    }
    const value = env(name);
    const set = value !== undefined;
    const unsetish = !set || (nullIsUnset && value === '');
    switch (ch) {
      case '-':
        return unsetish ? word : (value as string);
      case '+':
        return unsetish ? '' : word;
      default:
        if (!set) throw new LexError(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
        if (nullIsUnset && value === '') throw new LexError(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
        return value;
    }
  }
}
