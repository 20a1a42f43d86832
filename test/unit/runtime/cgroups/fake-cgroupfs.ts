// A fake cgroupfs over a temp dir: mkdir populates the new cgroup with its parent's file names (as the kernel
// does), writes to missing files fail with ENOENT, and a few files behave like the kernel's (cgroup.procs
// appends, cgroup.freeze updates cgroup.events, cgroup.subtree_control feeds the children's cgroup.controllers).

import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CgroupFs, realCgroupFs } from '../../../../src/runtime/cgroups/index.js';

export interface WriteRecord {
  /** Path relative to the fake root. */
  file: string;
  data: string;
}

export class FakeCgroupFs implements CgroupFs {
  readonly writes: WriteRecord[] = [];
  /** File name → initial content for files of a new cgroup (default: empty). */
  defaults: Record<string, string> = {};
  /** Files that exist only in the root of a hierarchy and are not copied to children. */
  rootOnly = new Set(['cgroup.sane_behavior', 'release_agent', 'cgroup.controllers']);

  private constructor(readonly root: string) {}

  static async create(): Promise<FakeCgroupFs> {
    return new FakeCgroupFs(await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-fakecg-')));
  }

  async cleanup(): Promise<void> {
    await fsp.rm(this.root, { recursive: true, force: true });
  }

  rel(file: string): string {
    return path.relative(this.root, file);
  }

  /** Writes whose file ends with `suffix`, as "relpath=data". */
  writesTo(suffix: string): string[] {
    return this.writes.filter((w) => w.file.endsWith(suffix)).map((w) => w.data);
  }

  /** Make a hierarchy root with the given files. */
  async seed(dir: string, files: Record<string, string>): Promise<void> {
    const abs = path.join(this.root, dir);
    await fsp.mkdir(abs, { recursive: true });
    for (const [name, content] of Object.entries(files)) await fsp.writeFile(path.join(abs, name), content);
  }

  async put(file: string, content: string): Promise<void> {
    await fsp.writeFile(path.join(this.root, file), content);
  }

  async get(file: string): Promise<string> {
    return fsp.readFile(path.join(this.root, file), 'utf8');
  }

  /** Files read, relative to the fake root. */
  readonly reads: string[] = [];

  readFile(file: string): Promise<string> {
    this.reads.push(this.rel(file));
    return realCgroupFs.readFile(file);
  }

  async writeFile(file: string, data: string): Promise<void> {
    this.writes.push({ file: this.rel(file), data });
    const name = path.basename(file);
    const dir = path.dirname(file);
    // ENOENT for files the "kernel" does not provide.
    await fsp.access(file);
    if (name === 'cgroup.procs') {
      await fsp.appendFile(file, `${data}\n`);
      return;
    }
    if (name === 'cgroup.freeze') {
      await fsp.writeFile(file, data);
      await fsp.writeFile(path.join(dir, 'cgroup.events'), `populated 0\nfrozen ${data.trim() === '1' ? 1 : 0}\n`);
      return;
    }
    if (name === 'cgroup.subtree_control') {
      const current = (await fsp.readFile(file, 'utf8')).trim().split(/\s+/).filter(Boolean);
      for (const tok of data.trim().split(/\s+/)) {
        const c = tok.slice(1);
        if (tok.startsWith('+') && !current.includes(c)) current.push(c);
        if (tok.startsWith('-')) current.splice(current.indexOf(c), 1);
      }
      await fsp.writeFile(file, current.join(' ') + '\n');
      return;
    }
    await realCgroupFs.writeFile(file, data);
  }

  async writeEach(file: string, values: readonly string[]): Promise<void> {
    for (const [i, v] of values.entries()) {
      try {
        await this.writeFile(file, v);
      } catch (err) {
        // a missing file fails at the open, before any value
        throw i === 0 && (err as NodeJS.ErrnoException).code === 'ENOENT' ? err : Object.assign(err as Error, { valueIndex: i });
      }
    }
  }

  async mkdir(dir: string): Promise<void> {
    await fsp.mkdir(dir);
    const parent = path.dirname(dir);
    for (const e of await fsp.readdir(parent, { withFileTypes: true })) {
      if (!e.isFile() || this.rootOnly.has(e.name)) continue;
      await fsp.writeFile(path.join(dir, e.name), this.defaults[e.name] ?? '');
    }
    // cgroup v2: a child's controllers are its parent's subtree_control.
    const subtree = path.join(parent, 'cgroup.subtree_control');
    if (await this.exists(subtree)) {
      await fsp.writeFile(path.join(dir, 'cgroup.controllers'), await fsp.readFile(subtree, 'utf8'));
      await fsp.writeFile(path.join(dir, 'cgroup.subtree_control'), '');
    }
  }

  async rmdir(dir: string): Promise<void> {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    if (entries.some((e) => e.isDirectory())) {
      throw Object.assign(new Error(`EBUSY: ${dir} has child cgroups`), { code: 'ENOTEMPTY' });
    }
    // the kernel refuses to remove a cgroup that still has tasks
    const procs = await fsp.readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    if (procs.trim() !== '') throw Object.assign(new Error(`EBUSY: ${dir} has tasks`), { code: 'EBUSY' });
    await fsp.rm(dir, { recursive: true });
  }

  subdirs(dir: string): Promise<string[]> {
    return realCgroupFs.subdirs(dir);
  }

  exists(file: string): Promise<boolean> {
    return realCgroupFs.exists(file);
  }
}
