import { nativeAddon } from '../native.js';
import type { Logger } from '../util/logger.js';

/**
 * Tells systemd about the daemon's state (READY=1, RELOADING=1, STOPPING=1, STATUS=…) when it runs as a
 * Type=notify service; a no-op without $NOTIFY_SOCKET. Sent from berthd's own process, so NotifyAccess=main holds.
 */
export function notifySystemd(state: string, log: Logger): void {
  const socket = process.env.NOTIFY_SOCKET;
  if (!socket) return;
  try {
    nativeAddon().sdNotify(socket, state);
  } catch (e) {
    log.warn({ err: e, socket }, 'could not notify systemd');
  }
}
