import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxImageTar } from '../helpers/busybox-image.js';
import { makePki, type TestPki } from '../helpers/tls-certs.js';
import { freePort } from '../helpers/registry.js';

/** Raw TLS handshake and one HTTP request: what a client without a trusted certificate gets. */
function rawPing(port: number, ca: string, cert?: { cert: Buffer; key: Buffer }): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ca: readFileSync(ca), servername: 'localhost', ...(cert ?? {}) }, () => {
      s.write('GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    let data = '';
    s.on('data', (b: Buffer) => (data += b.toString()));
    s.on('error', (e) => resolve({ ok: false, detail: e.message }));
    s.on('close', () => resolve({ ok: /^HTTP\/1\.1 200/.test(data), detail: data || 'closed without a response' }));
  });
}

describe('remote access over mutual TLS', () => {
  let d: TestDaemon;
  let pki: TestPki;
  let port: number;
  const dir = mkdtempSync(join(tmpdir(), 'ops-tls-'));
  const tlsArgs = (certDir: string, withCert = true): string[] => [
    '--tlsverify',
    '--tlscacert', join(certDir, 'ca.pem'),
    ...(withCert ? ['--tlscert', join(certDir, 'cert.pem'), '--tlskey', join(certDir, 'key.pem')] : []),
    '-H', `tcp://127.0.0.1:${port}`,
  ];
  const remote = (args: string[], certDir: string, input?: string) =>
    d.docker([...tlsArgs(certDir), ...args], { env: { DOCKER_HOST: '' }, timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) });

  beforeAll(async () => {
    pki = makePki(join(dir, 'pki'));
    port = await freePort();
    d = await startDaemon({
      extraArgs: ['-H', `tcp://127.0.0.1:${port}`, '--tlsverify', '--tlscacert', pki.ca, '--tlscert', pki.serverCert, '--tlskey', pki.serverKey],
    });
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(load.code, load.stderr).toBe(0);
  });
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'tls-exec']);
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves docker --tlsverify -H tcp://… with a certificate signed by the CA', async () => {
    const r = await remote(['version', '--format', '{{.Server.APIVersion}}'], pki.clientDir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('1.50');
  });

  it('serves DOCKER_HOST=tcp://… DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=…', async () => {
    const r = await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'], {
      env: { DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: pki.clientDir },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('busybox:latest');
  });

  it('refuses a client without a certificate at the handshake', async () => {
    const r = await d.docker([...tlsArgs(pki.clientDir, false), 'version'], { env: { DOCKER_HOST: '', DOCKER_CERT_PATH: join(dir, 'none') } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate|tls|handshake/i);
    const raw = await rawPing(port, pki.ca);
    expect(raw.ok).toBe(false);
    expect(raw.detail).not.toMatch(/^HTTP/);
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const r = await remote(['version'], pki.strangerDir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate|tls|handshake/i);
    const raw = await rawPing(port, pki.ca, { cert: readFileSync(join(pki.strangerDir, 'cert.pem')), key: readFileSync(join(pki.strangerDir, 'key.pem')) });
    expect(raw.ok).toBe(false);
    const good = await rawPing(port, pki.ca, { cert: readFileSync(join(pki.clientDir, 'cert.pem')), key: readFileSync(join(pki.clientDir, 'key.pem')) });
    expect(good.ok, good.detail).toBe(true);
  });

  it('runs hijacked streams over TLS: docker run -i (attach), docker exec -i and docker exec -it', async () => {
    const run = await remote(['run', '--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo end'], pki.clientDir, 'through attach\n');
    expect(run.code, `${run.stderr}\n${d.logs().slice(-3000)}`).toBe(0);
    expect(run.stdout).toBe('through attach\nend\n');

    const started = await remote(['run', '-d', '--name', 'tls-exec', 'busybox', 'sleep', '300'], pki.clientDir);
    expect(started.code, started.stderr).toBe(0);
    const exec = await remote(['exec', '-i', 'tls-exec', 'sh', '-c', 'cat; echo exit-after-eof; exit 3'], pki.clientDir, 'through exec\n');
    expect(exec.stdout).toBe('through exec\nexit-after-eof\n');
    expect(exec.code).toBe(3);
    // docker exec -it: a pty on the client side (util-linux script), the TTY stream hijacked over TLS.
    const cli = ['docker', ...tlsArgs(pki.clientDir), 'exec', '-it', 'tls-exec', 'sh'].join(' ');
    const tty = await runCommand('script', ['-qec', cli, '/dev/null'], { input: 'echo typed-$((6*7))\nexit 5\n', env: { ...d.env, DOCKER_HOST: '' }, timeoutMs: 30_000 });
    expect(tty.stdout).toContain('typed-42');
    expect(tty.code, tty.stdout).toBe(5);
    const logs = await remote(['logs', 'tls-exec'], pki.clientDir);
    expect(logs.code, logs.stderr).toBe(0);
    expect((await remote(['rm', '-f', 'tls-exec'], pki.clientDir)).code).toBe(0);
  });
});

describe('remote access the other ways', () => {
  let d: TestDaemon | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'ops-remote-'));
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'ssh-exec']);
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ssh://: the docker CLI reaches Berth through `docker system dial-stdio` on the remote side', async () => {
    d = await startDaemon();
    const load = await d.docker(['load', '-i', await busyboxImageTar()]);
    expect(load.code, load.stderr).toBe(0);
    // Stands in for ssh: runs the remote command (docker system dial-stdio) here, against Berth's socket.
    const bin = join(dir, 'bin');
    const ssh = join(bin, 'ssh');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin);
    writeFileSync(ssh, `#!/bin/sh\necho "$*" >> ${join(dir, 'ssh-args')}\nwhile [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done\nshift 2\nexec env DOCKER_HOST=unix://${d.socket} "$@"\n`);
    chmodSync(ssh, 0o755);
    const env = { DOCKER_HOST: 'ssh://tester@berth.invalid', PATH: `${bin}:${process.env.PATH ?? ''}` };
    const v = await d.docker(['version', '--format', '{{.Server.Version}}'], { env });
    expect(v.code, v.stderr).toBe(0);
    expect(readFileSync(join(dir, 'ssh-args'), 'utf8')).toContain('docker system dial-stdio');
    const run = await d.docker(['run', '--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo end'], { env, input: 'over ssh\n' });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('over ssh\nend\n');
    expect((await d.docker(['run', '-d', '--name', 'ssh-exec', 'busybox', 'sleep', '300'], { env })).code).toBe(0);
    const exec = await d.docker(['exec', '-i', 'ssh-exec', 'sh', '-c', 'cat; exit 4'], { env, input: 'exec over ssh\n' });
    expect(exec.stdout).toBe('exec over ssh\n');
    expect(exec.code).toBe(4);
  });

  it('plain TCP only when forced with --tls=false, with a loud warning', async () => {
    const port = await freePort();
    const plain = await startDaemon({ extraArgs: ['-H', `tcp://127.0.0.1:${port}`, '--tls=false'] });
    try {
      const r = await plain.docker(['version', '--format', '{{.Server.APIVersion}}'], { env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` } });
      expect(r.code, r.stderr).toBe(0);
      expect(plain.logs()).toMatch(/SERVING THE API ON TCP WITHOUT TLS CLIENT AUTHENTICATION/);
    } finally {
      await plain.stop();
    }
  });
});
