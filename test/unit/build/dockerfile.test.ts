import { describe, expect, it } from 'vitest';
import { parseDockerfile } from '../../../src/build/dockerfile-parser.js';
import { parseStages } from '../../../src/build/instructions.js';
import { envFromList, ShellLex } from '../../../src/build/shell-lex.js';
import { isExcluded, PatternMatcher, readIgnoreFile } from '../../../src/build/dockerignore.js';

const stagesOf = (text: string) => parseStages(parseDockerfile(text).nodes);

describe('Dockerfile parser', () => {
  it('joins continuations, skips comments inside them, keeps the joined line as the step text', () => {
    const p = parseDockerfile('FROM busybox\n# comment\nRUN echo a \\\n  # inner comment\n  && echo b\n\nCMD ["sh", "-c", "x"]\n');
    expect(p.nodes.map((n) => n.cmd)).toEqual(['FROM', 'RUN', 'CMD']);
    expect(p.nodes[1]?.original).toBe('RUN echo a   && echo b');
    expect(p.nodes[1]?.args).toEqual(['echo a   && echo b']);
    expect(p.nodes[1]?.startLine).toBe(3);
    expect(p.nodes[2]?.json).toBe(true);
    expect(p.nodes[2]?.args).toEqual(['sh', '-c', 'x']);
  });

  it('honours the escape directive (backtick continuations, backslashes kept)', () => {
    const p = parseDockerfile('# escape=`\nFROM busybox\nRUN echo C:\\dir `\n  more\n');
    expect(p.escapeToken).toBe('`');
    expect(p.nodes[1]?.args).toEqual(['echo C:\\dir   more']);
  });

  it('directives only count at the top; duplicates and bad escape tokens are errors; syntax is recorded', () => {
    expect(parseDockerfile('FROM busybox\n# escape=`\nRUN a \\\n b\n').nodes[1]?.args).toEqual(['a  b']);
    expect(() => parseDockerfile('# escape=`\n# escape=\\\nFROM x\n')).toThrow(/only one escape parser directive can be used/);
    expect(() => parseDockerfile('# escape=x\nFROM x\n')).toThrow(/invalid escape token 'x' does not match ` or \\/);
    expect(parseDockerfile('# syntax=docker/dockerfile:1\nFROM x\n').syntax).toBe('docker/dockerfile:1');
  });

  it('parses ENV/LABEL in both forms, keeping quotes for the expansion step', () => {
    const p = parseDockerfile('FROM x\nENV A=1 B="two words"\nENV C legacy value\nLABEL "k k"=v\n');
    expect(p.nodes[1]?.args).toEqual(['A', '1', '=', 'B', '"two words"', '=']);
    expect(p.nodes[2]?.args).toEqual(['C', 'legacy value', '']);
    expect(p.nodes[3]?.args).toEqual(['"k k"', 'v', '=']);
  });

  it('extracts flags and the ONBUILD sub-instruction', () => {
    const p = parseDockerfile('FROM --platform=linux/amd64 busybox AS b\nCOPY --from=b --chown=1:2 a b /dst/\nONBUILD RUN echo hi\n');
    expect(p.nodes[0]?.flags).toEqual(['--platform=linux/amd64']);
    expect(p.nodes[1]?.flags).toEqual(['--from=b', '--chown=1:2']);
    expect(p.nodes[1]?.args).toEqual(['a', 'b', '/dst/']);
    expect(p.nodes[2]?.sub?.cmd).toBe('RUN');
  });

  it('an empty file has no instructions', () => {
    expect(() => parseDockerfile('# just a comment\n\n')).toThrow(/file with no instructions/);
  });
});

describe('instructions', () => {
  it('splits stages, collects meta ARGs, names stages in lower case', () => {
    const { stages, metaArgs } = stagesOf('ARG V=1\nFROM busybox AS Build\nRUN x\nFROM scratch\nCOPY --from=build /a /a\n');
    expect(metaArgs).toHaveLength(1);
    expect(stages.map((s) => s.name)).toEqual(['build', '']);
    expect(stages[1]?.commands[0]).toMatchObject({ kind: 'copy', from: 'build', sources: ['/a'], dest: '/a' });
  });

  it('gives dockerd\'s errors', () => {
    expect(() => stagesOf('FROM x\nFOO bar\n')).toThrow('dockerfile parse error on line 2: unknown instruction: FOO');
    expect(() => stagesOf('RUN echo\n')).toThrow('no build stage in current context');
    expect(() => stagesOf('FROM x\nCOPY a\n')).toThrow('COPY requires at least two arguments, but only one was provided. Destination could not be determined');
    expect(() => stagesOf('FROM x AS 1a\n')).toThrow(/invalid name for build stage: "1a"/);
    expect(() => stagesOf('FROM x\nCOPY --bogus=1 a b\n')).toThrow('dockerfile parse error on line 2: unknown flag: bogus');
    expect(() => stagesOf('FROM x\nSHELL sh -c\n')).toThrow('SHELL requires the arguments to be in JSON form');
    expect(() => stagesOf('FROM x\nONBUILD FROM y\n')).toThrow("FROM isn't allowed as an ONBUILD trigger");
    expect(() => stagesOf('FROM x\nRUN <<EOF\necho hi\nEOF\n')).toThrow(/heredoc syntax requires BuildKit/);
  });

  it('parses HEALTHCHECK options and NONE', () => {
    const { stages } = stagesOf('FROM x\nHEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost\nHEALTHCHECK NONE\n');
    expect(stages[0]?.commands[0]).toMatchObject({ health: { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 5e9, Retries: 3 } });
    expect(stages[0]?.commands[1]).toMatchObject({ health: { Test: ['NONE'] } });
  });

  it('records RUN flags so the builder can refuse them', () => {
    const { stages } = stagesOf('FROM x\nRUN --mount=type=cache,target=/c echo\n');
    expect(stages[0]?.commands[0]).toMatchObject({ kind: 'run', flagsUsed: ['mount'] });
  });
});

describe('word processing', () => {
  const lex = new ShellLex('\\');
  const env = envFromList(['A=1', 'EMPTY=', 'SP=a b']);
  it('substitutes variables with defaults and alternatives', () => {
    expect(lex.processWord('$A-${A}-${B:-dflt}-${EMPTY:-e}-${EMPTY-e}-${A:+alt}-${B:+alt}', env)).toBe('1-1-dflt-e--alt-');
  });
  it('handles quotes and escapes', () => {
    expect(lex.processWord('"a $A" \'$A\' \\$A', env)).toBe('a 1 $A $A');
    expect(lex.processWord('"q\\"x"', env)).toBe('q"x');
    expect(() => lex.processWord('"open', env)).toThrow(/unexpected end of statement while looking for matching double-quote/);
    expect(() => lex.processWord('${A', env)).toThrow(/missing '}'/);
    expect(() => lex.processWord('${B:?must be set}', env)).toThrow(/B: must be set/);
  });
  it('splits words on unquoted whitespace (EXPOSE $PORTS)', () => {
    expect(lex.processWords('$SP "c d"', env)).toEqual(['a', 'b', 'c d']);
  });
  it('uses the backtick escape', () => {
    expect(new ShellLex('`').processWord('C:\\x `$A', env)).toBe('C:\\x $A');
  });
});

describe('.dockerignore', () => {
  it('reads patterns like Docker: comments, cleaning, leading slash, exceptions', () => {
    expect(readIgnoreFile('# c\n\n/foo/../bar\n!  keep \n./x/\n')).toEqual(['bar', '!keep', 'x']);
  });
  it('matches with **, *, ?, exceptions in order, and parent directories', () => {
    const p = ['**/*.log', 'build', '!build/keep.txt', 'docs/?.md', 'node_modules'];
    expect(isExcluded('a.log', p)).toBe(true);
    expect(isExcluded('x/y/a.log', p)).toBe(true);
    expect(isExcluded('build/out.o', p)).toBe(true);
    expect(isExcluded('build/keep.txt', p)).toBe(false);
    expect(isExcluded('docs/a.md', p)).toBe(true);
    expect(isExcluded('docs/ab.md', p)).toBe(false);
    expect(isExcluded('node_modules/x/y.js', p)).toBe(true);
    expect(isExcluded('src/main.ts', p)).toBe(false);
  });
  it('a later pattern wins over an earlier exception', () => {
    expect(isExcluded('a.txt', ['*', '!a.txt'])).toBe(false);
    expect(isExcluded('a.txt', ['!a.txt', '*'])).toBe(true);
    expect(isExcluded('dir/a.txt', ['dir', '!dir/a.txt'])).toBe(false);
  });
  it('MatchesOrParentMatches sees any parent', () => {
    const m = new PatternMatcher(['sub']);
    expect(m.matchesOrParentMatches('sub/deep/Dockerfile')).toBe(true);
    expect(() => new PatternMatcher(['!'])).toThrow('illegal exclusion pattern: "!"');
  });
});
