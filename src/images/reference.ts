import { InvalidParameterError } from '../errors.js';

/**
 * Docker image references (distribution/reference): `busybox` → docker.io/library/busybox:latest,
 * registries with ports, `name@sha256:…` digests.
 */
export interface ImageReference {
  /** Registry host[:port]: docker.io for Docker Hub. */
  domain: string;
  /** Repository path inside the registry (library/busybox). */
  path: string;
  tag?: string;
  digest?: string;
}

const ALNUM = '[a-z0-9]+';
const SEP = '(?:[._]|__|[-]+)';
const COMPONENT = `${ALNUM}(?:${SEP}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const NAME_RE = new RegExp(`^(?:(${DOMAIN})/)?(${COMPONENT}(?:/${COMPONENT})*)$`);
const FULL_RE = new RegExp(`^([^@]+?)(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_TAG = new RegExp(`^${TAG}$`);
const HEX64 = /^[a-f0-9]{64}$/;

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

export function invalidReference(detail?: string): InvalidParameterError {
  return new InvalidParameterError(detail ? `invalid reference format: ${detail}` : 'invalid reference format');
}

/** Splits off the registry the way ParseNormalizedNamed does. */
function splitDomain(name: string): { domain: string; remainder: string } {
  const i = name.indexOf('/');
  let domain: string;
  let remainder: string;
  const first = i < 0 ? '' : name.slice(0, i);
  if (i < 0 || (!first.includes('.') && !first.includes(':') && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_PREFIX + remainder;
  return { domain, remainder };
}

/** Parses and normalizes a reference; throws 400 "invalid reference format" like dockerd. */
export function parseReference(s: string): ImageReference {
  if (s === '' || s.length > 4096) throw invalidReference();
  if (HEX64.test(s)) throw new InvalidParameterError(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  const m = FULL_RE.exec(s);
  if (!m) throw invalidReference();
  const [, name = '', tag, digest] = m;
  const { domain, remainder } = splitDomain(name);
  if (remainder.toLowerCase() !== remainder) throw invalidReference(`repository name (${remainder}) must be lowercase`);
  const full = `${domain}/${remainder}`;
  if (!NAME_RE.test(full)) throw invalidReference();
  if (full.length > 255) throw invalidReference('repository name must not be more than 255 characters');
  const ref: ImageReference = { domain, path: remainder };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

export function isValidTag(tag: string): boolean {
  return ANCHORED_TAG.test(tag);
}

/** docker.io/library/busybox */
export function repoName(r: ImageReference): string {
  return `${r.domain}/${r.path}`;
}

/** The canonical string (docker.io/library/busybox:latest, host:5000/x@sha256:…). */
export function refString(r: ImageReference): string {
  let s = repoName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** The short form users type (busybox:latest, user/app:1, host:5000/x:1). */
export function familiarString(r: ImageReference): string {
  return refString({ ...r, domain: r.domain, path: r.path }).replace(/^docker\.io\/(?:library\/(?=[^/]+(?:[:@]|$)))?/, '');
}

export function familiarName(r: ImageReference): string {
  return familiarString({ domain: r.domain, path: r.path });
}

/** Adds `latest` when neither tag nor digest is given. */
export function withDefaultTag(r: ImageReference): ImageReference {
  return r.tag === undefined && r.digest === undefined ? { ...r, tag: 'latest' } : r;
}

/** The familiar form of a stored canonical ref string. */
export function familiarOf(canonical: string): string {
  return familiarString(parseReference(canonical));
}
