import { API_VERSION, MIN_API_VERSION } from '../version.js';
import { InvalidParameterError } from '../errors.js';

/** dockerd's mux pattern, `/v{version:[0-9.]+}`: `/v1..5/` is a version too (refused as too old), not a path. */
const PREFIX = /^\/v([0-9.]+)(?=\/|$|\?)/;

/**
 * Splits an optional `/v1.NN` prefix (dockerd's versioned mount, `/v{version:[0-9.]+}/…`) off a request URL: the
 * routes (and the hijack router's) match unversioned paths; the server's onRequest hook checks the version.
 */
export function stripVersionPrefix(url: string): { url: string; version: string | undefined } {
  const m = PREFIX.exec(url);
  if (!m) return { url, version: undefined };
  const rest = url.slice(m[0].length);
  return { url: rest === '' || rest.startsWith('?') ? `/${rest}` : rest, version: m[1] };
}

/**
 * Parsed version strings. Every request of the docker CLI carries its version and routes compare it again, so
 * the few versions clients send are parsed once; the cache stays small whatever clients send.
 */
const parsed = new Map<string, number[]>();
const PARSED_MAX = 64;

function parse(v: string): number[] {
  let p = parsed.get(v);
  if (p === undefined) {
    p = v.split('.').map(Number);
    if (parsed.size < PARSED_MAX) parsed.set(v, p);
  }
  return p;
}

function compare(a: string, b: string): number {
  const pa = parse(a);
  const pb = parse(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** dockerd's version middleware: refuse requests outside the served range with its texts. */
export function checkApiVersion(version: string | undefined): void {
  if (version === undefined) return;
  if (compare(version, API_VERSION) > 0) {
    throw new InvalidParameterError(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
  }
  if (compare(version, MIN_API_VERSION) < 0) {
    throw new InvalidParameterError(
      `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
    );
  }
}

/** The version a request speaks: its prefix, or the maximum when it has none. */
export function effectiveVersion(version: string | undefined): string {
  return version ?? API_VERSION;
}

export function versionAtLeast(version: string, min: string): boolean {
  return compare(version, min) >= 0;
}
