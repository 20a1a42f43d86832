/** The image configuration (OCI image config / Docker image JSON); its sha256 is the image ID. */
export interface ContainerConfigJson {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  ExposedPorts?: Record<string, object> | null;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Healthcheck?: Record<string, unknown>;
  ArgsEscaped?: boolean;
  Image?: string;
  Volumes?: Record<string, object> | null;
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  OnBuild?: string[] | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  Shell?: string[];
  [k: string]: unknown;
}

export interface HistoryJson {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfigJson {
  architecture?: string;
  variant?: string;
  os?: string;
  'os.version'?: string;
  created?: string;
  author?: string;
  comment?: string;
  docker_version?: string;
  container?: string;
  container_config?: ContainerConfigJson;
  config?: ContainerConfigJson;
  parent?: string;
  rootfs: { type: string; diff_ids: string[] };
  history?: HistoryJson[];
  [k: string]: unknown;
}

/** Validates the parts of a config Berth relies on; anything else is kept verbatim. */
export function parseImageConfig(bytes: Buffer, what: string): ImageConfigJson {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`invalid image config ${what}: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`invalid image config ${what}: not a JSON object`);
  const c = json as ImageConfigJson;
  const rootfs = c.rootfs as unknown;
  if (rootfs === undefined) {
    c.rootfs = { type: 'layers', diff_ids: [] };
  } else if (
    typeof rootfs !== 'object' || rootfs === null ||
    !Array.isArray((rootfs as { diff_ids?: unknown }).diff_ids) ||
    !((rootfs as { diff_ids: unknown[] }).diff_ids.every((d) => typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d)))
  ) {
    throw new Error(`invalid image config ${what}: rootfs.diff_ids must be a list of sha256 digests`);
  }
  c.rootfs.diff_ids ??= [];
  if (c.created !== undefined && typeof c.created !== 'string') throw new Error(`invalid image config ${what}: created must be a string`);
  return c;
}

/** RFC 3339 (any precision) → nanoseconds since the epoch; 0 when absent or unparseable. */
export function createdNano(created: string | undefined): bigint {
  if (!created) return 0n;
  const m = /^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(created);
  if (!m) return 0n;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return 0n;
  const frac = BigInt((m[2] ?? '').slice(0, 9).padEnd(9, '0') || '0');
  return BigInt(ms) * 1_000_000n + frac;
}
