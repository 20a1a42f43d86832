// Build-arg scoping as the classic builder does it: meta ARGs before the first FROM, ARGs declared per stage,
// values from `--build-arg` winning over defaults, and the predefined proxy args usable without ARG.

const BUILTIN = new Set([
  'HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy',
]);

export class BuildArgs {
  private allowed = new Map<string, string | undefined>();
  private readonly meta = new Map<string, string | undefined>();
  private readonly referenced = new Set<string>();

  constructor(private readonly fromOptions: ReadonlyMap<string, string | null>) {}

  /** A fresh scope for a stage: meta ARGs stay, the stage's ARGs start empty. */
  forStage(): BuildArgs {
    const b = new BuildArgs(this.fromOptions);
    for (const [k, v] of this.meta) b.meta.set(k, v);
    for (const k of this.referenced) b.referenced.add(k);
    return b;
  }

  addArg(key: string, value: string | undefined): void {
    this.allowed.set(key, value);
    this.referenced.add(key);
  }

  addMetaArg(key: string, value: string | undefined): void {
    this.meta.set(key, value);
  }

  private value(key: string, mapping: ReadonlyMap<string, string | undefined>): string | undefined {
    const o = this.fromOptions.get(key);
    if (o !== undefined && o !== null) return o;
    const d = mapping.get(key);
    if (d === undefined) return this.meta.get(key);
    return d;
  }

  /** Every allowed arg with a value: declared ARGs and the builtin proxy args given as options. */
  allAllowed(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [k, v] of this.fromOptions) if (BUILTIN.has(k) && v !== null) out.set(k, v);
    for (const k of this.allowed.keys()) {
      const v = this.value(k, this.allowed);
      if (v !== undefined) out.set(k, v);
    }
    return out;
  }

  /** Meta ARG values (FROM substitution). */
  allMeta(): Map<string, string> {
    const out = new Map<string, string>();
    for (const k of this.meta.keys()) {
      const v = this.value(k, this.meta);
      if (v !== undefined) out.set(k, v);
    }
    return out;
  }

  /** KEY=VALUE for allowed args not overridden by the config's Env. */
  filterAllowed(env: readonly string[]): string[] {
    const keys = new Set(env.map((e) => e.split('=', 1)[0]));
    const out: string[] = [];
    for (const [k, v] of this.allAllowed()) if (!keys.has(k)) out.push(`${k}=${v}`);
    return out;
  }

  /** Builtin args never declared with ARG stay out of the cache key and history, as dockerd. */
  isReferencedOrNotBuiltin(key: string): boolean {
    return this.referenced.has(key) || !BUILTIN.has(key);
  }

  mergeReferenced(other: BuildArgs): void {
    for (const k of other.referenced) this.referenced.add(k);
  }

  /** `--build-arg`s no ARG consumed (dockerd's warning). */
  unused(): string[] {
    const out: string[] = [];
    for (const k of this.fromOptions.keys()) if (!this.referenced.has(k) && !BUILTIN.has(k)) out.push(k);
    return out.sort();
  }
}
