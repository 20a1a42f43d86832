import type { Socket } from 'node:net';
import type { Logger } from '../util/logger.js';
import { Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from './mux.js';
import { nriCodecs, PLUGIN_SERVICE, RUNTIME_SERVICE, type NriMsg } from './proto.js';
import { Code, TtrpcClient, TtrpcError, TtrpcServer, type TtrpcHandler } from './ttrpc.js';

/** NRI's Event enum: a plugin's subscription is a bit mask with bit (event - 1) set per event. */
export const NriEvent = {
  RUN_POD_SANDBOX: 1,
  STOP_POD_SANDBOX: 2,
  REMOVE_POD_SANDBOX: 3,
  CREATE_CONTAINER: 4,
  POST_CREATE_CONTAINER: 5,
  START_CONTAINER: 6,
  POST_START_CONTAINER: 7,
  UPDATE_CONTAINER: 8,
  POST_UPDATE_CONTAINER: 9,
  STOP_CONTAINER: 10,
  REMOVE_CONTAINER: 11,
  UPDATE_POD_SANDBOX: 12,
  POST_UPDATE_POD_SANDBOX: 13,
  VALIDATE_CONTAINER_ADJUSTMENT: 14,
} as const;
export type NriEventName = keyof typeof NriEvent;
/** Every event of this NRI version (Event_LAST is 15). */
export const VALID_EVENTS = (1 << 14) - 1;

/** The plugin RPC each event is delivered by (StateChange is the fallback for plugins that lack the method). */
export const EVENT_METHOD: Record<NriEventName, string> = {
  RUN_POD_SANDBOX: 'RunPodSandbox',
  STOP_POD_SANDBOX: 'StopPodSandbox',
  REMOVE_POD_SANDBOX: 'RemovePodSandbox',
  CREATE_CONTAINER: 'CreateContainer',
  POST_CREATE_CONTAINER: 'PostCreateContainer',
  START_CONTAINER: 'StartContainer',
  POST_START_CONTAINER: 'PostStartContainer',
  UPDATE_CONTAINER: 'UpdateContainer',
  POST_UPDATE_CONTAINER: 'PostUpdateContainer',
  STOP_CONTAINER: 'StopContainer',
  REMOVE_CONTAINER: 'RemoveContainer',
  UPDATE_POD_SANDBOX: 'UpdatePodSandbox',
  POST_UPDATE_POD_SANDBOX: 'PostUpdatePodSandbox',
  VALIDATE_CONTAINER_ADJUSTMENT: 'ValidateContainerAdjustment',
};

/** Events a plugin may also receive as a StateChange when it does not implement the dedicated method. */
const STATE_CHANGE_EVENTS = new Set<NriEventName>([
  'RUN_POD_SANDBOX',
  'STOP_POD_SANDBOX',
  'REMOVE_POD_SANDBOX',
  'POST_CREATE_CONTAINER',
  'START_CONTAINER',
  'POST_START_CONTAINER',
  'POST_UPDATE_CONTAINER',
  'STOP_CONTAINER',
  'REMOVE_CONTAINER',
  'POST_UPDATE_POD_SANDBOX',
]);

/** A failure that ends the plugin (it timed out, its connection closed, it broke the protocol), not its answer. */
export function isFatal(e: unknown): boolean {
  if (!(e instanceof TtrpcError)) return true;
  return e.code === Code.DEADLINE_EXCEEDED || e.code === Code.UNAVAILABLE || e.code === Code.INTERNAL || e.code === Code.RESOURCE_EXHAUSTED;
}

export interface PluginRuntimeHandlers {
  /** Unsolicited container updates (Runtime.UpdateContainers): returns the updates that failed. */
  updateContainers(plugin: string, updates: NriMsg[]): Promise<NriMsg[]>;
}

/**
 * One external plugin's connection: the mux, a ttrpc client for the plugin's service (logical connection 1) and
 * a ttrpc server for the runtime's (2). Registration is the plugin calling RegisterPlugin; then the runtime
 * configures and synchronizes it (NriService drives those steps).
 */
export class PluginConn {
  name = '';
  idx = '';
  events = 0;
  closed = false;
  readonly registered: Promise<void>;
  private readonly mux: Mux;
  private readonly client: TtrpcClient;
  private readonly closeListeners: (() => void)[] = [];

  /** The configuration Configure hands over (a launched plugin's drop-in file; empty for external plugins). */
  config = '';

  constructor(
    socket: Socket,
    handlers: PluginRuntimeHandlers,
    private readonly log: Logger,
    /** A plugin Berth launched: its name and index come from its file name, not from its registration. */
    preset?: { name: string; idx: string; config: string },
  ) {
    if (preset) {
      this.name = preset.name;
      this.idx = preset.idx;
      this.config = preset.config;
    }
    this.mux = new Mux(socket);
    this.client = new TtrpcClient(this.mux.open(PLUGIN_SERVICE_CONN));
    const codecs = nriCodecs();
    let onRegister: (e?: Error) => void = () => undefined;
    this.registered = new Promise<void>((resolve, reject) => {
      onRegister = (e) => (e ? reject(e) : resolve());
    });
    this.registered.catch(() => undefined);
    const reg = codecs.runtime('RegisterPlugin');
    const upd = codecs.runtime('UpdateContainers');
    const table = new Map<string, TtrpcHandler>([
      [
        `${RUNTIME_SERVICE}/RegisterPlugin`,
        async (payload) => {
          const req = reg.decodeRequest(payload);
          const name = String(req.plugin_name ?? '');
          const idx = String(req.plugin_idx ?? '');
          const problem = checkPluginName(name) ?? checkPluginIndex(idx);
          if (problem) {
            onRegister(new Error(problem));
            throw new TtrpcError(Code.INVALID_ARGUMENT, problem);
          }
          if (!preset) {
            this.name = name;
            this.idx = idx;
          }
          this.log.info({ plugin: this.id, nriVersion: String(req.NRI_version ?? '') || 'unknown' }, 'NRI plugin registered');
          onRegister();
          return reg.encodeResponse({});
        },
      ],
      [
        `${RUNTIME_SERVICE}/UpdateContainers`,
        async (payload) => {
          const req = upd.decodeRequest(payload);
          const failed = await handlers.updateContainers(this.id, Array.isArray(req.update) ? (req.update as NriMsg[]) : []);
          return upd.encodeResponse({ failed });
        },
      ],
    ]);
    new TtrpcServer(this.mux.open(RUNTIME_SERVICE_CONN), table, (e) => this.log.debug({ plugin: this.id, err: String(e) }, 'NRI runtime service error'));
    this.mux.on('close', () => {
      if (!this.closed) this.log.info({ plugin: this.id }, 'NRI plugin connection closed');
      this.closed = true;
      onRegister(new Error('connection closed before the plugin registered'));
      for (const l of this.closeListeners.splice(0)) l();
    });
  }

  /** "<idx>-<name>", as NRI names plugins. */
  get id(): string {
    return this.name === '' ? 'unregistered' : `${this.idx}-${this.name}`;
  }

  onClose(l: () => void): void {
    if (this.closed) l();
    else this.closeListeners.push(l);
  }

  subscribed(event: NriEventName): boolean {
    return (this.events & (1 << (NriEvent[event] - 1))) !== 0;
  }

  close(): void {
    this.closed = true;
    this.mux.close();
  }

  /** Calls a method of the plugin's service with NRI's message codecs. */
  async call(method: string, req: NriMsg, timeoutMs: number): Promise<NriMsg> {
    const c = nriCodecs().plugin(method);
    const out = await this.client.call(PLUGIN_SERVICE, method, c.encodeRequest(req), timeoutMs);
    return c.decodeResponse(out);
  }

  /** Delivers an event by its own method, or as a StateChange when the plugin does not implement that method. */
  async deliver(event: NriEventName, req: NriMsg, timeoutMs: number): Promise<NriMsg> {
    try {
      return await this.call(EVENT_METHOD[event], req, timeoutMs);
    } catch (e) {
      if (!(e instanceof TtrpcError && e.code === Code.UNIMPLEMENTED && STATE_CHANGE_EVENTS.has(event))) throw e;
      await this.call('StateChange', { event, pod: req.pod ?? null, container: req.container ?? null }, timeoutMs);
      return {};
    }
  }
}

/** NRI's rule for plugin names: non-empty, letters, digits and - _ . + only. */
export function checkPluginName(name: string): string | undefined {
  if (name === '') return 'invalid plugin name: name is empty';
  const bad = /[^A-Za-z0-9_.+-]/.exec(name);
  return bad ? `invalid plugin name "${name}": contains invalid character "${bad[0]}"` : undefined;
}

/** NRI's rule for plugin indices: exactly two digits ("00"-"99"), which order the plugins. */
export function checkPluginIndex(idx: string): string | undefined {
  return /^[0-9]{2}$/.test(idx) ? undefined : `invalid plugin index "${idx}": must be two digits`;
}
