import { readLayeredFile } from './layered-root.js';
import { NotFoundError } from '../errors.js';

/** Larger passwd/group files are refused (an image could make berthd read gigabytes). */
export const MAX_ACCOUNT_FILE = 4 * 1024 * 1024;

/**
 * A file of the container's root read through its layer directories (top first), resolved inside the root
 * (see layered-root.ts): never a host file through a symlink, never a device.
 */
export async function readAccountFile(dirs: readonly string[], path: string): Promise<string | undefined> {
  return readLayeredFile(dirs, path, MAX_ACCOUNT_FILE)?.toString('utf8');
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  return (text ?? '').split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) return [];
    return [{ name: f[0] ?? '', uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' }];
  });
}

function parseGroup(text: string | undefined): { name: string; gid: number; members: string[] }[] {
  return (text ?? '').split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) return [];
    return [{ name: f[0] ?? '', gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }];
  });
}

const NUMERIC = /^\d+$/;

/**
 * Docker's user spec (`name`, `uid`, `name:group`, `uid:gid`) resolved against the image's
 * /etc/passwd and /etc/group, plus supplementary groups (membership and --group-add).
 */
export async function resolveUser(dirs: readonly string[], spec: string, groupAdd: readonly string[] = []): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec.split(':', 2);
  const passwd = parsePasswd(await readAccountFile(dirs, '/etc/passwd'));
  const groups = parseGroup(await readAccountFile(dirs, '/etc/group'));

  let uid = 0;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  if (userPart === '') {
    const root = passwd.find((p) => p.uid === 0);
    if (root) ({ name, home } = root);
    name ??= 'root';
    home = root?.home ?? '/root';
  } else if (NUMERIC.test(userPart)) {
    uid = Number(userPart);
    const p = passwd.find((e) => e.uid === uid);
    if (p) ({ gid, home, name } = p);
  } else {
    const p = passwd.find((e) => e.name === userPart);
    if (!p) throw new NotFoundError(`unable to find user ${userPart}: no matching entries in passwd file`);
    ({ uid, gid, home, name } = p);
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (NUMERIC.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((e) => e.name === groupPart);
      if (!g) throw new NotFoundError(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  }
  const additional = new Set<number>();
  if (groupPart === undefined || groupPart === '') {
    for (const g of groups) if (name !== undefined && g.members.includes(name)) additional.add(g.gid);
  }
  for (const ga of groupAdd) {
    if (NUMERIC.test(ga)) additional.add(Number(ga));
    else {
      const g = groups.find((e) => e.name === ga);
      if (!g) throw new NotFoundError(`unable to find group ${ga}: no matching entries in group file`);
      additional.add(g.gid);
    }
  }
  additional.delete(gid);
  return { uid, gid, additionalGids: [gid, ...additional], home };
}
