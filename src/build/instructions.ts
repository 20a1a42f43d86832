// Typed instructions from parsed Dockerfile nodes (BuildKit's instructions package, as the classic builder uses
// it): flags, argument counts and dockerd's error texts; stages split at FROM, meta ARGs before the first FROM.

import { DockerfileParseError, type DockerfileNode } from './dockerfile-parser.js';

export interface KeyValue {
  key: string;
  value: string;
  /** Legacy `ENV key value` form (no `=`). */
  noDelim: boolean;
}

export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export type Command =
  | { kind: 'env'; env: KeyValue[]; code: string; line: number }
  | { kind: 'label'; labels: KeyValue[]; code: string; line: number; noExpand?: boolean }
  | { kind: 'maintainer'; maintainer: string; code: string; line: number }
  | { kind: 'add' | 'copy'; sources: string[]; dest: string; chown: string; chmod: string; from: string; link: boolean; extra: string[]; code: string; line: number }
  | { kind: 'onbuild'; expression: string; code: string; line: number }
  | { kind: 'workdir'; path: string; code: string; line: number }
  | { kind: 'run'; cmdLine: string[]; prependShell: boolean; flagsUsed: string[]; code: string; line: number }
  | { kind: 'cmd' | 'entrypoint'; cmdLine: string[] | null; prependShell: boolean; code: string; line: number }
  | { kind: 'healthcheck'; health: HealthConfig; code: string; line: number }
  | { kind: 'expose'; ports: string[]; code: string; line: number }
  | { kind: 'user'; user: string; code: string; line: number }
  | { kind: 'volume'; volumes: string[]; code: string; line: number }
  | { kind: 'stopsignal'; signal: string; code: string; line: number }
  | { kind: 'arg'; args: { key: string; value: string | undefined }[]; code: string; line: number }
  | { kind: 'shell'; shell: string[]; code: string; line: number };

export interface Stage {
  baseName: string;
  name: string;
  platform: string;
  /** The FROM line as written (trimmed), printed as the step. */
  code: string;
  commands: Command[];
  line: number;
}

/** The `--flag` parser of one instruction (bflag.go). */
class Flags {
  private readonly defs = new Map<string, 'string' | 'bool' | 'strings'>();
  readonly values = new Map<string, string>();
  readonly multi = new Map<string, string[]>();
  readonly used: string[] = [];

  constructor(private readonly args: readonly string[]) {}

  add(name: string, type: 'string' | 'bool' | 'strings' = 'string'): this {
    this.defs.set(name, type);
    return this;
  }

  parse(): void {
    for (const a of this.args) {
      if (!a.startsWith('--')) throw new Error(`arg should start with -- : ${a}`);
      if (a === '--') return;
      let name = a.slice(2);
      let value: string | undefined;
      const i = name.indexOf('=');
      if (i >= 0) {
        value = name.slice(i + 1);
        name = name.slice(0, i);
      }
      const type = this.defs.get(name);
      if (!type) throw new Error(`unknown flag: ${name}`);
      if (this.used.includes(name) && type !== 'strings') throw new Error(`duplicate flag specified: ${name}`);
      this.used.push(name);
      if (type === 'bool') {
        const v = (value ?? 'true').toLowerCase();
        if (v !== 'true' && v !== 'false' && v !== '') throw new Error(`expecting boolean value for flag ${name}, not: ${value ?? ''}`);
        this.values.set(name, v === '' ? 'true' : v);
      } else {
        if (value === undefined) throw new Error(`missing a value on flag: ${name}`);
        if (type === 'strings') this.multi.set(name, [...(this.multi.get(name) ?? []), value]);
        else this.values.set(name, value);
      }
    }
  }

  str(name: string): string {
    return this.values.get(name) ?? '';
  }
}

const atLeastOne = (c: string): Error => new Error(`${c} requires at least one argument`);
const exactlyOne = (c: string): Error => new Error(`${c} requires exactly one argument`);
const noDest = (c: string): Error => new Error(`${c} requires at least two arguments, but only one was provided. Destination could not be determined`);

function kvps(args: readonly string[], name: string): KeyValue[] {
  if (args.length === 0) throw atLeastOne(name);
  if (args.length % 3 !== 0) throw new Error(`Bad input to ${name}, too many arguments`);
  const out: KeyValue[] = [];
  for (let j = 0; j < args.length; j += 3) {
    if ((args[j] as string).length === 0) throw new Error(`${name} names can not be blank`);
    out.push({ key: args[j] as string, value: args[j + 1] as string, noDelim: args[j + 2] === '' });
  }
  return out;
}

/** Go's time.ParseDuration → nanoseconds. */
export function parseGoDurationNs(s: string): number {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * (unit[m[2] as string] ?? 0);
    pos = re.lastIndex;
  }
  if (pos !== s.length || s === '') throw new Error(`time: invalid duration ${JSON.stringify(s)}`);
  return Math.round(total);
}

function interval(flags: Flags, name: string): number {
  const v = flags.str(name);
  if (v === '') return 0;
  const d = parseGoDurationNs(v);
  if (d === 0) return 0;
  if (d < 1e6) throw new Error(`Interval ${JSON.stringify(name)} cannot be less than 1ms`);
  return d;
}

function cmdLine(n: DockerfileNode): string[] {
  return n.json ? [...n.args] : [n.args.join(' ')];
}

/** One node → one typed command or a stage start. */
export function parseInstruction(n: DockerfileNode): Command | Stage {
  const flags = new Flags(n.flags);
  const code = n.original.trim();
  const line = n.startLine;
  const args = n.args;
  switch (n.cmd.toLowerCase()) {
    case 'env':
      flags.parse();
      return { kind: 'env', env: kvps(args, 'ENV'), code, line };
    case 'label':
      flags.parse();
      return { kind: 'label', labels: kvps(args, 'LABEL'), code, line };
    case 'maintainer':
      if (args.length !== 1) throw exactlyOne('MAINTAINER');
      flags.parse();
      return { kind: 'maintainer', maintainer: args[0] as string, code, line };
    case 'add':
    case 'copy': {
      const kind = n.cmd.toLowerCase() as 'add' | 'copy';
      if (args.length < 2) throw noDest(kind.toUpperCase());
      flags.add('chown').add('chmod').add('link', 'bool').add('exclude', 'strings');
      if (kind === 'copy') flags.add('from').add('parents', 'bool');
      else flags.add('keep-git-dir', 'bool').add('checksum').add('unpack', 'bool');
      flags.parse();
      const extra = flags.used.filter((f) => !['chown', 'chmod', 'from', 'link'].includes(f));
      return {
        kind,
        sources: args.slice(0, -1),
        dest: args[args.length - 1] as string,
        chown: flags.str('chown'),
        chmod: flags.str('chmod'),
        from: flags.str('from'),
        link: flags.values.get('link') === 'true',
        extra,
        code,
        line,
      };
    }
    case 'from': {
      let name = '';
      if (args.length === 3 && (args[1] as string).toLowerCase() === 'as') {
        name = (args[2] as string).toLowerCase();
        if (!/^[a-z][a-z0-9-_.]*$/.test(name)) {
          throw new Error(`invalid name for build stage: ${JSON.stringify(args[2])}, name can't start with a number or contain symbols`);
        }
      } else if (args.length !== 1) throw new Error('FROM requires either one or three arguments');
      flags.add('platform');
      flags.parse();
      return { baseName: args[0] as string, name, platform: flags.str('platform'), code, commands: [], line };
    }
    case 'onbuild': {
      if (!n.sub) throw atLeastOne('ONBUILD');
      flags.parse();
      const trigger = n.sub.cmd.toUpperCase();
      if (trigger === 'ONBUILD') throw new Error('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (trigger === 'MAINTAINER' || trigger === 'FROM') throw new Error(`${trigger} isn't allowed as an ONBUILD trigger`);
      return { kind: 'onbuild', expression: n.original.replace(/^\s*ONBUILD\s*/i, ''), code, line };
    }
    case 'workdir':
      if (args.length !== 1) throw exactlyOne('WORKDIR');
      flags.parse();
      return { kind: 'workdir', path: args[0] as string, code, line };
    case 'run': {
      flags.add('mount', 'strings').add('network').add('security').add('device', 'strings');
      flags.parse();
      return { kind: 'run', cmdLine: cmdLine(n), prependShell: !n.json, flagsUsed: [...new Set(flags.used)], code, line };
    }
    case 'cmd':
      flags.parse();
      return { kind: 'cmd', cmdLine: cmdLine(n), prependShell: !n.json, code, line };
    case 'entrypoint': {
      flags.parse();
      const c = cmdLine(n);
      return { kind: 'entrypoint', cmdLine: c.length === 0 || (c.length === 1 && c[0] === '' && !n.json) ? null : c, prependShell: !n.json, code, line };
    }
    case 'healthcheck': {
      if (args.length === 0) throw atLeastOne('HEALTHCHECK');
      const typ = (args[0] as string).toUpperCase();
      const rest = args.slice(1);
      if (typ === 'NONE') {
        if (rest.length !== 0) throw new Error('HEALTHCHECK NONE takes no arguments');
        return { kind: 'healthcheck', health: { Test: ['NONE'] }, code, line };
      }
      flags.add('interval').add('timeout').add('start-period').add('start-interval').add('retries');
      flags.parse();
      if (typ !== 'CMD') throw new Error(`Unknown type ${JSON.stringify(typ)} in HEALTHCHECK (try CMD)`);
      const slice = n.json ? rest : [rest.join(' ')];
      if (slice.length === 0 || (slice.length === 1 && slice[0] === '')) throw new Error('Missing command after HEALTHCHECK CMD');
      const health: HealthConfig = { Test: [n.json ? 'CMD' : 'CMD-SHELL', ...slice] };
      const iv = interval(flags, 'interval');
      const to = interval(flags, 'timeout');
      const sp = interval(flags, 'start-period');
      const si = interval(flags, 'start-interval');
      if (iv) health.Interval = iv;
      if (to) health.Timeout = to;
      if (sp) health.StartPeriod = sp;
      if (si) health.StartInterval = si;
      const r = flags.str('retries');
      if (r !== '') {
        if (!/^-?\d+$/.test(r)) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(r)}: invalid syntax`);
        const v = Number(r);
        if (v < 0) throw new Error(`--retries cannot be negative (${v})`);
        if (v) health.Retries = v;
      }
      return { kind: 'healthcheck', health, code, line };
    }
    case 'expose':
      if (args.length === 0) throw atLeastOne('EXPOSE');
      flags.parse();
      return { kind: 'expose', ports: [...args].sort(), code, line };
    case 'user':
      if (args.length !== 1) throw exactlyOne('USER');
      flags.parse();
      return { kind: 'user', user: args[0] as string, code, line };
    case 'volume': {
      if (args.length === 0) throw atLeastOne('VOLUME');
      flags.parse();
      const volumes = args.map((v) => v.trim());
      if (volumes.some((v) => v === '')) throw new Error('VOLUME specified can not be an empty string');
      return { kind: 'volume', volumes, code, line };
    }
    case 'stopsignal':
      if (args.length !== 1) throw exactlyOne('STOPSIGNAL');
      return { kind: 'stopsignal', signal: args[0] as string, code, line };
    case 'arg': {
      if (args.length < 1) throw atLeastOne('ARG');
      const out = args.map((a) => {
        const i = a.indexOf('=');
        if (i < 0) return { key: a, value: undefined };
        if (i === 0) throw new Error('ARG names can not be blank');
        return { key: a.slice(0, i), value: a.slice(i + 1) };
      });
      return { kind: 'arg', args: out, code, line };
    }
    case 'shell': {
      flags.parse();
      const s = cmdLine(n);
      if (n.args.length === 0) throw atLeastOne('SHELL');
      if (!n.json) throw new Error('SHELL requires the arguments to be in JSON form');
      return { kind: 'shell', shell: s, code, line };
    }
    default:
      throw new Error(`unknown instruction: ${n.cmd}`);
  }
}

/** Nodes → stages and the meta ARGs before the first FROM, with dockerd's error texts. */
export function parseStages(nodes: readonly DockerfileNode[]): { stages: Stage[]; metaArgs: Command[] } {
  const stages: Stage[] = [];
  const metaArgs: Command[] = [];
  for (const n of nodes) {
    let c: Command | Stage;
    if (n.heredoc) {
      throw new DockerfileParseError(
        `dockerfile parse error on line ${n.startLine}: the heredoc syntax requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`,
      );
    }
    try {
      c = parseInstruction(n);
    } catch (e) {
      throw new DockerfileParseError(`dockerfile parse error on line ${n.startLine}: ${(e as Error).message}`);
    }
    if ('baseName' in c) {
      stages.push(c);
      continue;
    }
    const cur = stages[stages.length - 1];
    if (!cur) {
      if (c.kind === 'arg') {
        metaArgs.push(c);
        continue;
      }
      throw new DockerfileParseError('no build stage in current context');
    }
    cur.commands.push(c);
  }
  return { stages, metaArgs };
}
