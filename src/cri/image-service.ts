import type { ImageRecord, ImageService } from '../images/image-service.js';
import { parseReference, refString, withDefaultTag } from '../images/reference.js';
import type { LayerStore } from '../snapshots/layer-store.js';
import type { RegistryService } from '../registry/registry-service.js';
import type { AuthConfig } from '../registry/auth-config.js';
import { InvalidParameterError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { msg, str, nanos, type Msg } from './messages.js';

/** CRI's `runtime.v1.ImageService` on the same image store and registry client as the Docker API. */
export class CriImageService {
  constructor(
    private readonly images: ImageService,
    private readonly layers: LayerStore,
    private readonly registry: RegistryService,
    private readonly imageFsPath: string,
    private readonly log: Logger,
  ) {}

  /** An image by ID, ID prefix or reference (short names are docker.io's, as the kubelet sends them). */
  find(spec: string): ImageRecord | undefined {
    if (spec === '') return undefined;
    try {
      return this.images.tryResolve(spec);
    } catch {
      return undefined; // a malformed reference is "not present", as containerd answers
    }
  }

  /** The image's layer directories, top first (to read its /etc/passwd and /etc/group). */
  layerDirs(img: ImageRecord): string[] {
    return img.chainId ? this.layers.lowerDirs(img.chainId) : [];
  }

  /** The CRI Image message. */
  toCri(img: ImageRecord): Msg {
    const user = img.config.config?.User ?? '';
    const userPart = user.split(':')[0] ?? '';
    const numeric = /^\d+$/.test(userPart);
    return {
      id: img.id,
      repo_tags: img.tags,
      repo_digests: img.digests,
      size: String(img.size),
      ...(numeric ? { uid: { value: userPart } } : {}),
      username: numeric ? '' : userPart,
      spec: { image: img.id, annotations: {} },
      pinned: false,
    };
  }

  async listImages(req: Msg): Promise<Msg> {
    const filter = str(msg(msg(req.filter).image).image);
    const wanted = filter !== '' ? this.find(filter)?.id : undefined;
    if (filter !== '' && wanted === undefined) return { images: [] };
    const out: Msg[] = [];
    for (const e of this.images.list({ all: false })) {
      const id = e.Id as string;
      if (wanted !== undefined && id !== wanted) continue;
      const img = this.images.get(id);
      if (img) out.push(this.toCri(img));
    }
    return { images: out };
  }

  async imageStatus(req: Msg): Promise<Msg> {
    const img = this.find(str(msg(req.image).image));
    if (!img) return { image: null, info: {} };
    const info: Record<string, string> = {};
    if (req.verbose === true) {
      info.info = JSON.stringify({ imageSpec: img.config, chainID: img.chainId ?? '', size: img.size });
    }
    return { image: this.toCri(img), info };
  }

  async pullImage(req: Msg): Promise<Msg> {
    const spec = str(msg(req.image).image);
    if (spec === '') throw new InvalidParameterError('image reference must not be empty');
    // No tag means :latest here (the Docker API's "all tags" reading does not apply to CRI pulls).
    const ref = withDefaultTag(parseReference(spec));
    const name = refString(ref);
    const a = msg(req.auth);
    const auth: AuthConfig = {};
    if (str(a.username) !== '') auth.username = str(a.username);
    if (str(a.password) !== '') auth.password = str(a.password);
    if (str(a.auth) !== '') auth.auth = str(a.auth);
    if (str(a.server_address) !== '') auth.serveraddress = str(a.server_address);
    if (str(a.identity_token) !== '') auth.identitytoken = str(a.identity_token);
    if (str(a.registry_token) !== '') auth.registrytoken = str(a.registry_token);
    await this.registry.pull(name, undefined, auth, undefined, () => undefined);
    const img = this.images.resolve(name);
    this.log.info({ image: name, id: img.id }, 'CRI image pulled');
    return { image_ref: img.id };
  }

  async removeImage(req: Msg): Promise<Msg> {
    const spec = str(msg(req.image).image);
    const img = this.find(spec);
    if (!img) return {}; // already gone: RemoveImage is idempotent
    // CRI removes the image, every reference to it included (containerd deletes by ID).
    this.images.remove(img.id, { force: true });
    return {};
  }

  async imageFsInfo(): Promise<Msg> {
    let used = 0;
    const seen = new Set<string>();
    for (const e of this.images.list({ all: true })) {
      const chainId = this.images.get(e.Id as string)?.chainId;
      if (!chainId) continue;
      for (const l of this.layers.chain(chainId)) {
        if (seen.has(l.chainId)) continue;
        seen.add(l.chainId);
        used += l.size;
      }
    }
    const usage = {
      timestamp: nanos(Date.now()),
      fs_id: { mountpoint: this.imageFsPath },
      used_bytes: { value: String(used) },
      inodes_used: { value: String(seen.size) },
    };
    return { image_filesystems: [usage], container_filesystems: [] };
  }
}
