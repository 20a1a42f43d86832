// The C sources stay modules a reader can hold: no include cycle between the shim's own headers, no file
// over 800 lines (conventions.md, C).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const NATIVE = fileURLToPath(new URL('../../../native', import.meta.url));
const DIRS = ['shim', 'init', 'addon'];

function sources(dir: string): string[] {
  return readdirSync(join(NATIVE, dir))
    .filter((f) => f.endsWith('.c') || f.endsWith('.h'))
    .map((f) => join(dir, f));
}

describe('native sources', () => {
  it('have no include cycle', () => {
    for (const dir of DIRS) {
      const includes = new Map<string, string[]>();
      for (const f of sources(dir)) {
        const text = readFileSync(join(NATIVE, f), 'utf8');
        includes.set(f.slice(dir.length + 1), [...text.matchAll(/^#include "([^"]+)"/gm)].map((m) => m[1] ?? ''));
      }
      const state = new Map<string, 'visiting' | 'done'>();
      const visit = (file: string, path: string[]): void => {
        if (state.get(file) === 'done') return;
        if (state.get(file) === 'visiting') throw new Error(`include cycle in native/${dir}: ${[...path, file].join(' -> ')}`);
        state.set(file, 'visiting');
        for (const inc of includes.get(file) ?? []) visit(inc, [...path, file]);
        state.set(file, 'done');
      };
      for (const f of includes.keys()) visit(f, []);
    }
  });

  it('keep every file under 800 lines', () => {
    // the shim and init (the addon gets the cycle check only)
    const long = ['shim', 'init'].flatMap(sources)
      .map((f) => ({ f, lines: readFileSync(join(NATIVE, f), 'utf8').split('\n').length }))
      .filter((x) => x.lines > 800);
    expect(long).toEqual([]);
  });
});
