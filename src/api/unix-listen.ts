import { chmodSync, chownSync } from 'node:fs';
import type { Server } from 'node:net';

/**
 * Listens on a unix socket that is never connectable by anyone but root before it has its final owner and
 * mode: bind(2) runs (synchronously, inside listen()) under umask 0777, so the socket is born mode 0000; it is
 * then given its group and only then opened to `mode`. (A chmod after a plain listen leaves a window in which
 * the socket has 0777 & ~umask and any local user can connect and drive the API as root.) dockerd does the same
 * (go-connections' NewUnixSocket).
 */
export async function listenUnixSocket(server: Server, path: string, owner: { uid: number; gid: number }, mode: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const umask = process.umask(0o777);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
  chownSync(path, owner.uid, owner.gid);
  chmodSync(path, mode);
}
