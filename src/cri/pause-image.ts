import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { ImageService } from '../images/image-service.js';
import { importImage } from '../images/image-import.js';

/** The repository of the sandbox holder image (tagged with the digest of the berth-init that is inside). */
export const PAUSE_REPO = 'berth.local/pause';

/**
 * The pod sandbox's image: one layer holding berth-init as /pause, run as `/pause --pause`. Built locally
 * from the daemon's own berth-init the first time a pod is run, so no pause image has to be pulled; it is an
 * ordinary image (visible in `docker images`, protected from rmi while pods use it).
 */
export async function ensurePauseImage(images: ImageService, initPath: string): Promise<string> {
  const bin = readFileSync(initPath);
  const tag = createHash('sha256').update(bin).digest('hex').slice(0, 12);
  const name = `${PAUSE_REPO}:${tag}`;
  const existing = images.tryResolve(name);
  if (existing) return existing.id;
  const pack = tar.pack();
  pack.entry({ name: 'pause', mode: 0o755, uid: 0, gid: 0, mtime: new Date(0) }, bin);
  pack.entry({ name: 'dev', type: 'directory', mode: 0o755, mtime: new Date(0) });
  pack.entry({ name: 'proc', type: 'directory', mode: 0o755, mtime: new Date(0) });
  pack.entry({ name: 'sys', type: 'directory', mode: 0o755, mtime: new Date(0) });
  pack.entry({ name: 'etc', type: 'directory', mode: 0o755, mtime: new Date(0) });
  pack.finalize();
  return importImage(images, Readable.from(pack), {
    repo: PAUSE_REPO,
    tag,
    changes: ['ENTRYPOINT ["/pause", "--pause"]', 'LABEL io.berth.cri.pause=true'],
    message: 'Berth pod sandbox holder (berth-init --pause)',
  });
}
