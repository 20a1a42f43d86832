import type { Dispatcher } from 'undici';
import { request } from './http.js';
import type { Logger } from '../util/logger.js';
import { credentialsKey, type Credentials } from './auth-config.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { connectError, registryErrorFrom, RegistryError } from './errors.js';
import type { Endpoint } from './hosts.js';
import { MAX_ERROR_BODY_BYTES, MAX_TOKEN_BODY_BYTES, readAtMost, sizeText } from './body.js';

export const USER_AGENT = 'berth/0.1 (linux) docker/28.2.2';
const CLIENT_ID = 'docker';
/** Tokens are reused until this long before they expire. */
const EXPIRY_MARGIN_MS = 10_000;
/** The distribution spec's minimum token lifetime when a token server names none or less. */
const MIN_EXPIRES_IN = 60;
const PING_TTL_MS = 5 * 60_000;

interface CachedToken {
  token: string;
  expiresAt: number;
}

export interface TokenResult {
  token: string;
  expiresIn: number;
  refreshToken?: string;
}

/** `repository:library/busybox:pull,push` */
export function repositoryScope(path: string, actions: readonly string[]): string {
  return `repository:${path}:${actions.join(',')}`;
}

/** Merges scopes naming the same resource (`repository:x:pull` + `repository:x:push` → `repository:x:pull,push`). */
export function mergeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const s of scopes) {
    const i = s.lastIndexOf(':');
    if (i < 0) continue;
    const resource = s.slice(0, i);
    const set = byResource.get(resource) ?? new Set<string>();
    for (const a of s.slice(i + 1).split(',')) if (a !== '') set.add(a);
    byResource.set(resource, set);
  }
  return [...byResource.entries()].map(([r, a]) => `${r}:${[...a].sort().join(',')}`).sort();
}

/**
 * Registry authentication: the /v2/ ping and its challenges per endpoint, Basic credentials, and the Bearer
 * token flow (realm/service/scope; anonymous, Basic-authenticated GET, or OAuth2 POST with a refresh token),
 * with tokens cached per endpoint, identity and scope set until shortly before they expire.
 */
export class RegistryAuth {
  private readonly pings = new Map<string, { challenges: Challenge[]; at: number }>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log.child({ sub: 'registry-auth' });
  }

  /** GET /v2/: [] when the registry needs no authentication, its challenges when it answers 401. */
  async ping(endpoint: Endpoint, fresh = false): Promise<Challenge[]> {
    const cached = this.pings.get(endpoint.origin);
    if (!fresh && cached && Date.now() - cached.at < PING_TTL_MS) return cached.challenges;
    const url = `${endpoint.origin}/v2/`;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', dispatcher: endpoint.dispatcher, headers: { 'user-agent': USER_AGENT } });
    } catch (e) {
      throw connectError('GET', url, e);
    }
    // The body of a ping matters only as an error text.
    const { bytes: body } = await readAtMost(res.body, MAX_ERROR_BODY_BYTES).catch(() => ({ bytes: Buffer.alloc(0) }));
    let challenges: Challenge[];
    if (res.statusCode === 200) challenges = [];
    else if (res.statusCode === 401) challenges = parseChallenges(res.headers['www-authenticate']);
    else throw registryErrorFrom(res.statusCode, '', body);
    this.pings.set(endpoint.origin, { challenges, at: Date.now() });
    return challenges;
  }

  forgetPing(endpoint: Endpoint): void {
    this.pings.delete(endpoint.origin);
  }

  /** The Authorization header value for requests needing `scopes`, or undefined when none is needed. */
  async authorization(endpoint: Endpoint, creds: Credentials, scopes: readonly string[], challenge?: Challenge, force = false): Promise<string | undefined> {
    const challenges = challenge ? [challenge] : await this.ping(endpoint);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer && bearer.params.realm) {
      if (creds.kind === 'bearer') return `Bearer ${creds.token}`;
      const merged = mergeScopes([...scopes, ...(bearer.params.scope ? bearer.params.scope.split(' ') : [])]);
      const key = `${endpoint.origin}|${bearer.params.realm}|${bearer.params.service ?? ''}|${credentialsKey(creds)}|${merged.join(' ')}`;
      const hit = this.tokens.get(key);
      if (!force && hit && hit.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return `Bearer ${hit.token}`;
      const t = await this.fetchToken(endpoint, bearer, creds, merged, false);
      this.tokens.set(key, { token: t.token, expiresAt: Date.now() + t.expiresIn * 1000 });
      return `Bearer ${t.token}`;
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic) {
      if (creds.kind === 'basic' || creds.kind === 'identity') {
        const password = creds.kind === 'basic' ? creds.password : creds.refreshToken;
        return `Basic ${Buffer.from(`${creds.username}:${password}`).toString('base64')}`;
      }
      if (creds.kind === 'bearer') return `Bearer ${creds.token}`;
    }
    return undefined;
  }

  /** Asks the token server for a token (and, when `offline`, a refresh token to hand back as IdentityToken). */
  async fetchToken(endpoint: Endpoint, challenge: Challenge, creds: Credentials, scopes: readonly string[], offline: boolean): Promise<TokenResult> {
    const realm = challenge.params.realm as string;
    const service = challenge.params.service ?? '';
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new RegistryError(0, [], `invalid token realm ${JSON.stringify(realm)} announced by ${endpoint.origin}`);
    }
    const headers: Record<string, string> = { 'user-agent': USER_AGENT };
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (creds.kind === 'identity') {
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.refreshToken, service, client_id: CLIENT_ID });
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      if (offline) form.set('access_type', 'offline');
      body = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service !== '') realmUrl.searchParams.set('service', service);
      for (const s of scopes) realmUrl.searchParams.append('scope', s);
      if (creds.kind === 'basic') {
        headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
        if (creds.username !== '') realmUrl.searchParams.set('account', creds.username);
        if (offline) {
          realmUrl.searchParams.set('offline_token', 'true');
          realmUrl.searchParams.set('client_id', CLIENT_ID);
        }
      }
    }
    const url = realmUrl.toString();
    // The realm may be another host (auth.docker.io); same host as the registry reuses its TLS settings.
    const dispatcher = realmUrl.origin === endpoint.origin ? endpoint.dispatcher : undefined;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method, headers, ...(body !== undefined ? { body } : {}), ...(dispatcher ? { dispatcher } : {}) });
    } catch (e) {
      throw connectError(method, url, e);
    }
    let read: { bytes: Buffer; complete: boolean };
    try {
      read = await readAtMost(res.body, res.statusCode === 200 ? MAX_TOKEN_BODY_BYTES : MAX_ERROR_BODY_BYTES);
    } catch (e) {
      throw connectError(method, url, e);
    }
    const { bytes: buf, complete } = read;
    if (res.statusCode !== 200) {
      const err = registryErrorFrom(res.statusCode, '', buf);
      this.log.debug({ realm, status: res.statusCode, err: err.message }, 'token request refused');
      throw err;
    }
    if (!complete) throw new RegistryError(res.statusCode, [], `token response from ${realm} is larger than ${sizeText(MAX_TOKEN_BODY_BYTES)}`);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown; refresh_token?: unknown };
    try {
      doc = JSON.parse(buf.toString('utf8')) as typeof doc;
    } catch {
      throw new RegistryError(res.statusCode, [], `unable to decode token response from ${realm}`);
    }
    const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (token === '') throw new RegistryError(res.statusCode, [], 'authorization server did not include a token in the response');
    const expiresIn = typeof doc.expires_in === 'number' && doc.expires_in > MIN_EXPIRES_IN ? doc.expires_in : MIN_EXPIRES_IN;
    return { token, expiresIn, ...(typeof doc.refresh_token === 'string' && doc.refresh_token !== '' ? { refreshToken: doc.refresh_token } : {}) };
  }
}
