import { readFileSync } from 'node:fs';
import { InvalidParameterError } from '../errors.js';

/** An OCI platform: what a manifest list entry or an image config says it runs on. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** containerd's normalisation of architecture names and default variants. */
export function normalizeArch(arch: string, variant: string | undefined): { architecture: string; variant?: string } {
  const a = arch.toLowerCase();
  const v = variant?.toLowerCase();
  switch (a) {
    case 'i386':
      return { architecture: '386' };
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return v && v !== 'v1' ? { architecture: 'amd64', variant: v } : { architecture: 'amd64' };
    case 'aarch64':
    case 'arm64':
      return v && v !== '8' && v !== 'v8' ? { architecture: 'arm64', variant: v } : { architecture: 'arm64', variant: 'v8' };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm':
      return { architecture: 'arm', variant: v === undefined || v === '' ? 'v7' : v.startsWith('v') ? v : `v${v}` };
    default:
      return v ? { architecture: a, variant: v } : { architecture: a };
  }
}

export function normalizePlatform(p: Platform): Platform {
  return { os: p.os.toLowerCase() === 'macos' ? 'darwin' : p.os.toLowerCase(), ...normalizeArch(p.architecture, p.variant) };
}

function armVariant(): string {
  try {
    const m = /^CPU architecture\s*:\s*(\d+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    const n = Number(m?.[1] ?? 7);
    return n >= 8 ? 'v8' : `v${n}`;
  } catch {
    return 'v7';
  }
}

/** The platform of this host, as dockerd reports it (os/arch/variant). */
export function hostPlatform(): Platform {
  const archMap: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', mips64el: 'mips64le' };
  const architecture = archMap[process.arch] ?? process.arch;
  return normalizePlatform({ os: 'linux', architecture, ...(architecture === 'arm' ? { variant: armVariant() } : {}) });
}

/** Parses `--platform` values: `linux`, `linux/amd64`, `linux/arm/v7`, or a bare architecture. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split('/');
  if (parts.some((p) => p === '' || !/^[A-Za-z0-9_.-]+$/.test(p)) || parts.length > 3) {
    throw new InvalidParameterError(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  const host = hostPlatform();
  const knownOs = ['linux', 'windows', 'darwin', 'freebsd', 'macos'];
  if (parts.length === 1) {
    const one = (parts[0] as string).toLowerCase();
    if (knownOs.includes(one)) return normalizePlatform({ os: one, architecture: host.architecture, ...(host.variant ? { variant: host.variant } : {}) });
    return normalizePlatform({ os: 'linux', architecture: one });
  }
  const [os = '', arch = '', variant] = parts;
  return normalizePlatform({ os, architecture: arch, ...(variant !== undefined ? { variant } : {}) });
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Lower is better; undefined when `candidate` cannot run on `want`. */
function score(candidate: Platform, want: Platform): number | undefined {
  const c = normalizePlatform(candidate);
  const w = normalizePlatform(want);
  if (c.os !== w.os) return undefined;
  if (c.architecture === w.architecture) {
    if (c.variant === w.variant) return 0;
    if (c.architecture === 'arm' && c.variant && w.variant) {
      // An armv7 host runs v6 and v5 images (containerd's platform matcher).
      const cv = Number(c.variant.slice(1));
      const wv = Number(w.variant.slice(1));
      return cv <= wv ? wv - cv : undefined;
    }
    if (c.architecture === 'amd64') {
      const lvl = (v: string | undefined): number => (v ? Number(v.slice(1)) || 1 : 1);
      return lvl(c.variant) <= lvl(w.variant) ? lvl(w.variant) - lvl(c.variant) : undefined;
    }
    return c.variant === undefined || w.variant === undefined ? 1 : undefined;
  }
  if (w.architecture === 'arm64' && c.architecture === 'arm' && c.variant === 'v8') return 10;
  return undefined;
}

/** Picks the best entry of a manifest list for `want` (ties: the first, as containerd). */
export function selectPlatform<T extends { platform?: Platform | undefined }>(entries: readonly T[], want: Platform): T | undefined {
  let best: T | undefined;
  let bestScore = Infinity;
  for (const e of entries) {
    if (!e.platform) continue;
    const s = score(e.platform, want);
    if (s !== undefined && s < bestScore) {
      best = e;
      bestScore = s;
    }
  }
  return best;
}

export function platformMatches(candidate: Platform, want: Platform): boolean {
  return score(candidate, want) !== undefined;
}
