import { BerthError } from '../errors.js';

/** One entry of a registry's `{"errors":[…]}` body (distribution's errcode). */
export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/** An error answer from a registry, rendered as Go's errcode.Errors prints it. */
export class RegistryError extends BerthError {
  constructor(
    readonly status: number,
    readonly errors: RegistryErrorEntry[],
    message: string,
  ) {
    super(message);
  }

  has(code: string): boolean {
    return this.errors.some((e) => e.code === code);
  }
}

/** "MANIFEST_UNKNOWN" → "manifest unknown" (errcode.ErrorCode.Error()). */
function codeText(code: string): string {
  return code.toLowerCase().replace(/_/g, ' ');
}

export function formatErrors(errors: RegistryErrorEntry[]): string {
  const one = (e: RegistryErrorEntry): string => `${codeText(e.code)}: ${e.message}`;
  if (errors.length === 1) return one(errors[0] as RegistryErrorEntry);
  return `errors:\n${errors.map((e) => `${one(e)}\n`).join('')}`;
}

/** Builds the error for a non-success registry response from its status and body. */
export function registryErrorFrom(status: number, statusText: string, body: Buffer): RegistryError {
  let entries: RegistryErrorEntry[] = [];
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: unknown; details?: unknown };
    if (Array.isArray(doc.errors)) {
      entries = doc.errors
        .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
        .map((e) => ({ code: String(e.code ?? 'UNKNOWN'), message: String(e.message ?? ''), ...(e.detail !== undefined ? { detail: e.detail } : {}) }));
    } else if (typeof doc.details === 'string') {
      entries = [{ code: status === 401 ? 'UNAUTHORIZED' : 'UNKNOWN', message: doc.details }];
    }
  } catch {
    // not JSON
  }
  if (entries.length === 0) {
    if (status === 401) entries = [{ code: 'UNAUTHORIZED', message: 'authentication required' }];
    else if (status === 403) entries = [{ code: 'DENIED', message: 'requested access to the resource is denied' }];
    else if (status === 404) entries = [{ code: 'NOT_FOUND', message: 'not found' }];
    else if (status === 429) entries = [{ code: 'TOOMANYREQUESTS', message: 'too many requests' }];
    else return new RegistryError(status, [], `received unexpected HTTP status: ${status} ${statusText}`);
  }
  return new RegistryError(status, entries, formatErrors(entries));
}

/** A transport failure, worded like Go's net/http client errors (`Get "url": dial tcp …`). */
export class RegistryConnectError extends BerthError {}

export function connectError(method: string, url: string, e: unknown): RegistryConnectError {
  const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const c = err.cause ?? err;
  const u = new URL(url);
  const hostport = u.port ? `${u.hostname}:${u.port}` : `${u.hostname}:${u.protocol === 'https:' ? 443 : 80}`;
  let detail: string;
  switch (c.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      detail = `dial tcp: lookup ${u.hostname}: no such host`;
      break;
    case 'ECONNREFUSED':
      detail = `dial tcp ${hostport}: connect: connection refused`;
      break;
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      detail = `dial tcp ${hostport}: i/o timeout`;
      break;
    case 'ECONNRESET':
      detail = `read tcp ${hostport}: connection reset by peer`;
      break;
    default:
      detail = /wrong version number|packet length too long/i.test(c.message ?? '')
        ? 'http: server gave HTTP response to HTTPS client'
        : (c.message || String(e)).trim();
  }
  const verb = method.charAt(0) + method.slice(1).toLowerCase();
  return new RegistryConnectError(`${verb} "${url}": ${detail}`, { cause: e });
}

/** True for failures worth another attempt (transport errors, 5xx, 429). */
export function isRetryable(e: unknown): boolean {
  if (e instanceof RegistryConnectError) return true;
  if (e instanceof RegistryError) return e.status >= 500 || e.status === 429 || e.status === 408;
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  return /^(UND_ERR_|ECONNRESET|EPIPE|ETIMEDOUT|ECONNREFUSED)/.test(code) || /terminated|other side closed|socket/i.test((e as Error)?.message ?? '');
}
