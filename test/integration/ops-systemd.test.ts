import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN, removeOwnedLinks, runCommand } from '../helpers/daemon.js';
import { makePki } from '../helpers/tls-certs.js';
import { freePort } from '../helpers/registry.js';

const ACTIVATE = fileURLToPath(new URL('../helpers/sd-activate.py', import.meta.url));
const UNITS = fileURLToPath(new URL('../../contrib/systemd/', import.meta.url));

interface Note {
  started?: number;
  pid?: number | null;
  message?: string;
}

/** berthd started as systemd would start berth.service from berth.socket: fd 3, LISTEN_*, NOTIFY_SOCKET. */
class Activated {
  readonly notes: Note[] = [];
  private buffer = '';
  private waiters: (() => void)[] = [];
  exit: Promise<number | null>;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on('data', (b: Buffer) => {
      this.buffer += b.toString();
      let i;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        this.notes.push(JSON.parse(this.buffer.slice(0, i)) as Note);
        this.buffer = this.buffer.slice(i + 1);
        for (const w of this.waiters.splice(0)) w();
      }
    });
    this.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Waits (bounded) for a notification containing `text`. */
  async waitFor(text: string, timeoutMs = 30_000): Promise<Note> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.notes.find((n) => n.message?.split('\n').includes(text));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${text} within ${timeoutMs} ms; got ${JSON.stringify(this.notes)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
}

describe('systemd integration: socket activation and Type=notify readiness', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ops-sd-'));
  const sock = join(dir, 'docker.sock');
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: join(dir, 'docker-config') };
  let daemonId: string | undefined;
  let activated: Activated | undefined;
  afterAll(async () => {
    if (activated && activated.child.exitCode === null) {
      activated.child.kill('SIGTERM');
      await activated.exit;
    }
    if (daemonId) await removeOwnedLinks(`berth:${daemonId}`);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the socket passed as fd 3 (-H fd://) and reports READY=1 only once it answers', async () => {
    writeFileSync(join(dir, 'daemon.json'), '{}');
    const child = spawn('python3', [ACTIVATE, sock, join(dir, 'notify.sock'), process.execPath, MAIN,
      '-H', 'fd://', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', join(dir, 'daemon.json'), '--no-cri'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    activated = new Activated(child);
    const ready = await activated.waitFor('READY=1').catch((e: Error) => {
      throw new Error(`${e.message}\n${stderr.slice(-3000)}`);
    });
    const berthdPid = activated.notes.find((n) => n.started !== undefined)?.started;
    // Sent by berthd itself (NotifyAccess=main), naming itself as the main pid.
    expect(ready.pid).toBe(berthdPid);
    expect(ready.message).toContain(`MAINPID=${berthdPid}`);
    // The socket is the one systemd (here: the helper) created; berthd did not replace it.
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    // Ready means serving: the first request after READY=1 is answered.
    const v = await runCommand('docker', ['version', '--format', '{{.Server.APIVersion}}'], { env });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe('1.50');
    daemonId = (await runCommand('docker', ['info', '--format', '{{.ID}}'], { env })).stdout.trim();
    expect(stderr).toMatch(/API listening on a socket from systemd/);
    expect(stderr).not.toMatch(/FSTDEP|Deprecation/);
  });

  it('reports RELOADING=1 then READY=1 around a SIGHUP reload, and STOPPING=1 on SIGTERM', async () => {
    const a = activated as Activated;
    const before = a.notes.length;
    expect((await runCommand('docker', ['info', '--format', '{{.Debug}}'], { env })).stdout.trim()).toBe('false');
    writeFileSync(join(dir, 'daemon.json'), JSON.stringify({ labels: ['reloaded=yes'], debug: true }));
    a.child.kill('SIGHUP');
    await a.waitFor('RELOADING=1');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && a.notes.slice(before).filter((n) => n.message?.includes('READY=1')).length === 0) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(a.notes.slice(before).map((n) => n.message)).toEqual(expect.arrayContaining(['RELOADING=1', 'READY=1']));
    const labels = await runCommand('docker', ['info', '--format', '{{json .Labels}}'], { env });
    expect(JSON.parse(labels.stdout)).toEqual(['reloaded=yes']);
    // debug reloads too (no log-level flag here): docker info says so and debug lines appear in the log.
    expect((await runCommand('docker', ['info', '--format', '{{.Debug}}'], { env })).stdout.trim()).toBe('true');

    a.child.kill('SIGTERM');
    expect(await a.exit).toBe(0);
    expect(a.notes.map((n) => n.message)).toContain('STOPPING=1');
  });

  it('serves a TCP socket from systemd (ListenStream=127.0.0.1:PORT) with mutual TLS', async () => {
    const pki = makePki(join(dir, 'pki'));
    const port = await freePort();
    const child = spawn('python3', [ACTIVATE, `tcp:127.0.0.1:${port}`, join(dir, 'notify-tcp.sock'), process.execPath, MAIN,
      '-H', 'fd://', '--tlsverify', '--tlscacert', pki.ca, '--tlscert', pki.serverCert, '--tlskey', pki.serverKey,
      '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '--config-file', join(dir, 'daemon.json'), '--no-cri'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const a = new Activated(child);
    try {
      await a.waitFor('READY=1').catch((e: Error) => {
        throw new Error(`${e.message}\n${stderr.slice(-3000)}`);
      });
      const tls = (certDir: string) => ['--tlsverify', '--tlscacert', join(certDir, 'ca.pem'), '--tlscert', join(certDir, 'cert.pem'), '--tlskey', join(certDir, 'key.pem'), '-H', `tcp://127.0.0.1:${port}`];
      const ok = await runCommand('docker', [...tls(pki.clientDir), 'version', '--format', '{{.Server.APIVersion}}'], { env: { ...env, DOCKER_HOST: '' } });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout.trim()).toBe('1.50');
      const stranger = await runCommand('docker', [...tls(pki.strangerDir), 'version'], { env: { ...env, DOCKER_HOST: '' } });
      expect(stranger.code).not.toBe(0);
      expect(stderr).toMatch(/"tls":true[^\n]*"msg":"API listening on a socket from systemd"/);
    } finally {
      child.kill('SIGTERM');
      expect(await a.exit).toBe(0);
    }
  });

  it('refuses fd:// when no socket was passed', async () => {
    const r = await runCommand(process.execPath, [MAIN, '-H', 'fd://', '--data-root', join(dir, 'data2'), '--exec-root', join(dir, 'run2'), '--config-file', join(dir, 'daemon.json'), '--no-cri'], { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no sockets found via socket activation');
    if (existsSync(join(dir, 'run2'))) expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(join(dir, 'run2'));
  });

  it('ships berth.socket and berth.service wired for -H fd://, Type=notify, Delegate=yes and KillMode=process', () => {
    const service = readFileSync(join(UNITS, 'berth.service'), 'utf8');
    const socket = readFileSync(join(UNITS, 'berth.socket'), 'utf8');
    expect(service).toMatch(/^Type=notify$/m);
    expect(service).toMatch(/^ExecStart=.* -H fd:\/\//m);
    expect(service).toMatch(/^ExecReload=.*HUP/m);
    expect(service).toMatch(/^Delegate=yes$/m);
    expect(service).toMatch(/^KillMode=process$/m);
    expect(service).toMatch(/^Requires=berth\.socket$/m);
    expect(socket).toMatch(/^ListenStream=\/run\/berth\/docker\.sock$/m);
    expect(socket).toMatch(/^SocketMode=0660$/m);
  });
});
