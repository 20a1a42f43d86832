import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { busyboxEntries } from './busybox-image.js';
import { dockerSaveArchive, type ImageSpec, type LayerEntry } from './image-builder.js';
import type { TestDaemon } from './daemon.js';
import type { TestRegistry } from './registry.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/cri/', import.meta.url));
const CACHE = fileURLToPath(new URL('../fixtures/cache/', import.meta.url));

/** The registries critest's images live in; the test points each at the local registry with a hosts.toml. */
export const CRITEST_REGISTRIES = ['registry.k8s.io', 'gcr.io', 'k8s.gcr.io'];

/** A static binary built from test/fixtures/cri/<name>.c with the machine's compiler (cached). */
function standinBinary(name: string): Buffer {
  const src = join(FIXTURES, `${name}.c`);
  const out = join(CACHE, `${name}-${readFileSync(src).toString('base64url').length}`);
  if (!existsSync(out)) {
    mkdirSync(CACHE, { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    execFileSync('cc', ['-static', '-O2', '-Wall', '-o', tmp, src]);
    renameSync(tmp, out);
  }
  return readFileSync(out);
}

function file(path: string, content: string | Buffer, mode = 0o644, extra: Partial<LayerEntry> = {}): LayerEntry {
  return { path, type: 'file', mode, content, ...extra };
}

function dir(path: string, mode = 0o755): LayerEntry {
  return { path, type: 'directory', mode };
}

function nginxLayer(): LayerEntry[] {
  return [
    dir('usr'), dir('usr/sbin'), dir('usr/share'), dir('usr/share/nginx'), dir('usr/share/nginx/html'), dir('var'), dir('var/run'),
    file('usr/sbin/nginx', standinBinary('nginx-standin'), 0o755),
    file('usr/share/nginx/html/index.html', '<h1>Welcome to nginx!</h1>\n'),
  ];
}

/**
 * /bin/sh as upstream busybox images have it: a busybox whose sh execs external commands through PATH.
 * busybox-static's sh runs applets in-process (FEATURE_SH_STANDALONE), so a masked /bin/ls would never be
 * exec'd; Debian's dynamically linked busybox (scripts/fetch-busybox-shell.sh) is built without it, and comes
 * here with the host's libraries it links.
 */
function shellEntries(): LayerEntry[] {
  const bin = execFileSync(fileURLToPath(new URL('../../scripts/fetch-busybox-shell.sh', import.meta.url)), { encoding: 'utf8' }).trim();
  const out: LayerEntry[] = [file('bin/sh', readFileSync(bin), 0o755)];
  const dirs = new Set<string>();
  for (const line of execFileSync('ldd', [bin], { encoding: 'utf8' }).split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (!m) continue;
    const lib = m[1].slice(1);
    const parts = lib.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    out.push(file(lib, readFileSync(realpathSync(m[1])), 0o755));
  }
  return [...[...dirs].sort().map((d) => dir(d)), ...out];
}

/**
 * Stand-ins for the images critest pulls, built from busybox-static with the configuration critest checks:
 * users and groups, distinct images per tag where critest expects distinct IDs, one image under several tags
 * where it expects one, web servers answering on the ports critest probes (busybox httpd behind a small
 * "nginx" master process), a setuid binary for the no_new_privs checks. Paths are registry-relative
 * (the registry host is the mirror's).
 */
/**
 * The busybox rootfs as the busybox image ships it: applets are hard links to /bin/busybox (so masking one
 * path does not follow a symlink to busybox itself), plus `pgrep` and `ipcs`, which Debian's busybox-static
 * lacks, as small scripts over ps and /proc/sysvipc.
 */
function busyboxImageEntries(): LayerEntry[] {
  const out = busyboxEntries()
    .filter((e) => e.path !== 'bin/sh')
    .map((e): LayerEntry => (e.type === 'symlink' && e.linkname === '/bin/busybox' ? { path: e.path, type: 'link', linkname: 'bin/busybox' } : e));
  out.push(...shellEntries());
  const have = new Set(out.map((e) => e.path));
  const script = (path: string, text: string): void => {
    if (!have.has(path)) out.push(file(path, text, 0o755));
  };
  script('usr/bin/pgrep', '#!/bin/sh\n# pgrep NAME: pids of processes whose name is NAME\nps -o pid,comm | awk -v n="$1" \'NR > 1 && $2 == n { print $1 }\'\n');
  script(
    'usr/bin/ipcs',
    '#!/bin/sh\n# ipcs [-m]: the System V shared memory segments of this IPC namespace\necho "------ Shared Memory Segments --------"\necho "key        shmid      owner      perms      bytes      nattch"\ntail -n +2 /proc/sysvipc/shm | while read key shmid perms size cpid lpid nattch uid rest; do echo "$key $shmid $uid $perms $size $nattch"; done\n',
  );
  return out;
}

export function critestImages(): ImageSpec[] {
  const bb = busyboxImageEntries();
  const marker = (name: string): LayerEntry[] => [file(name, `${name}\n`)];
  const image = (tags: string[], layers: LayerEntry[][], config: Record<string, unknown> = {}): ImageSpec => ({ repoTags: tags, layers: [bb, ...layers], config });
  const user = (u: string): Record<string, unknown> => ({ User: u });
  const bbPasswd = (bb.find((e) => e.path === 'etc/passwd')?.content ?? '').toString();
  const bbGroup = (bb.find((e) => e.path === 'etc/group')?.content ?? '').toString();
  return [
    image(['e2e-test-images/busybox:1.29-2'], [], { Cmd: ['sh'] }),
    image(['e2e-test-images/nginx:1.14-2'], [nginxLayer()], { Cmd: ['nginx', '-g', 'daemon off;'], ExposedPorts: { '80/tcp': {} } }),
    image(['k8s-staging-cri-tools/hostnet-nginx-amd64:latest'], [nginxLayer()], {
      Cmd: ['nginx', '-g', 'daemon off;'],
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NGINX_PORT=12003'],
    }),
    image(
      ['e2e-test-images/httpd:2.4.39-4'],
      [[
        dir('usr'), dir('usr/local'), dir('usr/local/bin'), dir('usr/local/apache2'), dir('usr/local/apache2/htdocs'),
        file('usr/local/apache2/htdocs/index.html', '<html><body><h1>It works!</h1></body></html>\n'),
        file('usr/local/bin/httpd-foreground', '#!/bin/sh\necho "httpd-foreground: starting httpd on port 80"\nexec httpd -f -v -p 80 -h /usr/local/apache2/htdocs\n', 0o755),
      ]],
      { Cmd: ['httpd-foreground'], ExposedPorts: { '80/tcp': {} } },
    ),
    image(['e2e-test-images/nonewprivs:1.3'], [[dir('usr'), dir('usr/local'), dir('usr/local/bin'), file('usr/local/bin/nnp', standinBinary('nnp-standin'), 0o4755, { uid: 0, gid: 0 })]], {
      Cmd: ['/usr/local/bin/nnp'],
    }),
    image(['k8s-staging-cri-tools/test-image-user-uid:latest'], [], user('1002')),
    image(['k8s-staging-cri-tools/test-image-user-username:latest'], [], user('www-data')),
    image(['k8s-staging-cri-tools/test-image-user-uid-group:latest'], [], user('1003:1004')),
    image(['k8s-staging-cri-tools/test-image-user-username-group:latest'], [], user('www-data:1004')),
    image(
      ['k8s-staging-cri-tools/test-image-predefined-group:latest'],
      [[
        file('etc/passwd', `${bbPasswd}default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n`),
        file('etc/group', `${bbGroup}default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n`),
        dir('home/default-user'),
      ]],
      user('1000'),
    ),
    image(['k8s-staging-cri-tools/test-image-latest:latest'], [marker('test-image-latest')]),
    image(['k8s-staging-cri-tools/test-image-tag:test'], [marker('test-image-tag')]),
    image(['k8s-staging-cri-tools/test-image-tag:all'], [marker('test-image-tag-all')]),
    image(['k8s-staging-cri-tools/test-image-1:latest'], [marker('test-image-1')]),
    image(['k8s-staging-cri-tools/test-image-2:latest'], [marker('test-image-2')]),
    image(['k8s-staging-cri-tools/test-image-3:latest'], [marker('test-image-3')]),
    image(['k8s-staging-cri-tools/test-image-tags:1', 'k8s-staging-cri-tools/test-image-tags:2', 'k8s-staging-cri-tools/test-image-tags:3'], [marker('test-image-tags')]),
    image(['pause:3.9'], [marker('pause')], { Cmd: ['sleep', '3600'] }),
  ];
}

/** Builds the stand-ins, loads them into `d`, pushes them to `reg` under their upstream paths and drops them from `d`. */
export async function pushCritestImages(d: TestDaemon, reg: TestRegistry): Promise<string[]> {
  const images = critestImages().map((i) => ({ ...i, repoTags: i.repoTags.map((t) => `${reg.host}/${t}`) }));
  const tar = join(d.dir, 'critest-images.tar');
  writeFileSync(tar, await dockerSaveArchive(images));
  const run = async (args: string[]): Promise<void> => {
    const r = await d.docker(args, { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  };
  await run(['load', '-q', '-i', tar]);
  const tags = images.flatMap((i) => i.repoTags);
  for (const t of tags) await run(['push', '-q', t]);
  await run(['rmi', ...tags]);
  return tags;
}

/** containerd-style hosts.toml files sending critest's registries to the local one. */
export function writeCritestMirrors(certsDir: string, reg: TestRegistry): void {
  for (const r of CRITEST_REGISTRIES) {
    mkdirSync(join(certsDir, r), { recursive: true });
    writeFileSync(join(certsDir, r, 'hosts.toml'), `server = "https://${r}"\n\n[host."http://${reg.host}"]\n  capabilities = ["pull", "resolve"]\n`);
  }
}
