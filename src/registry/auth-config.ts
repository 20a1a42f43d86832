/** Docker's AuthConfig as clients send it in X-Registry-Auth and POST /auth. */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64("user:password"), as stored in the CLI's config.json. */
  auth?: string;
  email?: string;
  serveraddress?: string;
  /** An OAuth2 refresh token returned by an earlier login. */
  identitytoken?: string;
  /** A bearer token to send to the registry as is. */
  registrytoken?: string;
}

/** What the registry client authenticates with. */
export type Credentials =
  | { kind: 'anonymous' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'identity'; username: string; refreshToken: string }
  | { kind: 'bearer'; token: string };

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Validates a decoded AuthConfig object (unknown fields are ignored, wrong types dropped). */
export function toAuthConfig(v: unknown): AuthConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
  const o = v as Record<string, unknown>;
  const out: AuthConfig = {};
  for (const k of ['username', 'password', 'auth', 'email', 'serveraddress', 'identitytoken', 'registrytoken'] as const) {
    // Go's json decoding is case-insensitive on field names.
    const key = Object.keys(o).find((x) => x.toLowerCase() === k);
    const s = key !== undefined ? str(o[key]) : undefined;
    if (s !== undefined) out[k] = s;
  }
  return out;
}

/**
 * X-Registry-Auth: base64url (the CLI) or standard base64 (some SDKs) of a JSON AuthConfig. An absent or
 * undecodable header means anonymous access, as dockerd treats it for pulls.
 */
export function decodeAuthHeader(header: string | string[] | undefined): AuthConfig {
  const h = Array.isArray(header) ? header[0] : header;
  if (h === undefined || h.trim() === '') return {};
  try {
    const text = Buffer.from(h.trim().replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
    return toAuthConfig(JSON.parse(text));
  } catch {
    return {};
  }
}

export function encodeAuthHeader(a: AuthConfig): string {
  return Buffer.from(JSON.stringify(a)).toString('base64url');
}

/** The credentials an AuthConfig carries, in dockerd's order of preference. */
export function credentialsOf(a: AuthConfig): Credentials {
  if (a.registrytoken) return { kind: 'bearer', token: a.registrytoken };
  let username = a.username ?? '';
  let password = a.password ?? '';
  if (a.auth && username === '' && password === '') {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      username = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
  }
  if (a.identitytoken) return { kind: 'identity', username, refreshToken: a.identitytoken };
  if (username !== '' || password !== '') return { kind: 'basic', username, password };
  return { kind: 'anonymous' };
}

/** A stable key for caching tokens per identity (never the secret itself). */
export function credentialsKey(c: Credentials): string {
  switch (c.kind) {
    case 'anonymous':
      return 'anon';
    case 'basic':
      return `basic:${c.username}:${hashish(c.password)}`;
    case 'identity':
      return `id:${c.username}:${hashish(c.refreshToken)}`;
    case 'bearer':
      return `bearer:${hashish(c.token)}`;
  }
}

function hashish(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return `${s.length}.${h.toString(16)}`;
}
