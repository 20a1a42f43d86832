import { InvalidParameterError } from '../errors.js';
import type { ContainerConfigJson } from './image-config.js';

const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'HEALTHCHECK', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']);

/** A JSON string array (exec form) or undefined when the text is not one. */
function jsonArray(text: string): string[] | undefined {
  const t = text.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(t);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  } catch {
    // shell form
  }
  return undefined;
}

/** Splits `a=b "c d"=e` style words, honouring quotes and backslashes. */
function words(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (ch === '\\' && i + 1 < text.length) {
      cur += text[++i];
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur !== '') out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has || cur !== '') out.push(cur);
  return out;
}

function keyValues(instr: string, rest: string): [string, string][] {
  const ws = words(rest);
  if (ws.length > 0 && !(ws[0] as string).includes('=')) {
    // Legacy `ENV key value with spaces`.
    const m = /^\s*(\S+)\s+(.*)$/s.exec(rest);
    if (!m) throw new InvalidParameterError(`${instr} requires at least two arguments`);
    return [[m[1] as string, words(m[2] as string).join(' ')]];
  }
  return ws.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw new InvalidParameterError(`${instr} names can not be blank`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

/**
 * Applies `docker import/commit --change` instructions (Dockerfile syntax) to a container config,
 * as dockerd's BuildFromConfig does for the allowed subset.
 */
export function applyChanges(config: ContainerConfigJson, changes: readonly string[]): ContainerConfigJson {
  const c: ContainerConfigJson = { ...config };
  for (const raw of changes) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^(\S+)\s*(.*)$/s.exec(line);
    const instr = (m?.[1] ?? '').toUpperCase();
    const rest = m?.[2] ?? '';
    if (!ALLOWED.has(instr)) throw new InvalidParameterError(`${m?.[1] ?? line} is not a valid change command`);
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        const arr = jsonArray(rest) ?? ['/bin/sh', '-c', rest];
        if (instr === 'CMD') c.Cmd = arr;
        else {
          c.Entrypoint = arr;
          if (!jsonArray(rest)) c.Cmd = null;
        }
        break;
      }
      case 'ENV': {
        const env = [...(c.Env ?? [])];
        for (const [k, v] of keyValues(instr, rest)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        c.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...(c.Labels ?? {}) };
        for (const [k, v] of keyValues(instr, rest)) labels[k] = v;
        c.Labels = labels;
        break;
      }
      case 'EXPOSE': {
        const ports = { ...(c.ExposedPorts ?? {}) };
        for (const p of words(rest)) ports[p.includes('/') ? p.toLowerCase() : `${p}/tcp`] = {};
        c.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols = { ...(c.Volumes ?? {}) };
        for (const v of jsonArray(rest) ?? words(rest)) vols[v] = {};
        c.Volumes = vols;
        break;
      }
      case 'USER':
        c.User = rest.trim();
        break;
      case 'WORKDIR': {
        const dir = rest.trim();
        c.WorkingDir = dir.startsWith('/') ? dir : `${(c.WorkingDir ?? '/').replace(/\/?$/, '/')}${dir}`;
        break;
      }
      case 'STOPSIGNAL':
        c.StopSignal = rest.trim();
        break;
      case 'ONBUILD':
        c.OnBuild = [...(c.OnBuild ?? []), rest.trim()];
        break;
      case 'HEALTHCHECK': {
        const hc = rest.trim();
        if (/^NONE$/i.test(hc)) c.Healthcheck = { Test: ['NONE'] };
        else {
          const cm = /^CMD\s+(.*)$/is.exec(hc);
          if (!cm) throw new InvalidParameterError('HEALTHCHECK options are not supported in --change; use HEALTHCHECK CMD ...');
          const arr = jsonArray(cm[1] as string);
          c.Healthcheck = { Test: arr ? ['CMD', ...arr] : ['CMD-SHELL', cm[1] as string] };
        }
        break;
      }
    }
  }
  return c;
}
