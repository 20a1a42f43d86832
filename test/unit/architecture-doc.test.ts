// docs/architecture.md's source layout must name folders and files that exist, and every src/ folder must be
// named there: the document fails this test when the tree moves without it.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The entries of the "Source layout" block: [path relative to the repo, is a folder]. */
function layoutEntries(): { path: string; folder: boolean }[] {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Source layout'));
  const block = section.slice(section.indexOf('```') + 3, section.indexOf('```', section.indexOf('```') + 3));
  const out: { path: string; folder: boolean }[] = [];
  let top = '';
  for (const line of block.split('\n')) {
    const m = /^( *)(\S+)(\s|$)/.exec(line);
    if (!m || !m[2]) continue;
    const name = m[2];
    if (!/^[\w.-]+\/?$/.test(name) || !/\.(ts|c)$|\/$/.test(name)) continue;
    const indent = m[1]?.length ?? 0;
    if (indent === 0) {
      top = name;
      out.push({ path: name, folder: name.endsWith('/') });
    } else if (indent === 2) out.push({ path: top + name, folder: name.endsWith('/') });
  }
  return out;
}

describe('docs/architecture.md', () => {
  const entries = layoutEntries();

  it('names folders and files that exist', () => {
    expect(entries.length).toBeGreaterThan(15);
    const missing = entries.filter((e) => !existsSync(join(ROOT, e.path)) || statSync(join(ROOT, e.path)).isDirectory() !== e.folder);
    expect(missing.map((e) => e.path)).toEqual([]);
  });

  it('names every folder of src/ and native/', () => {
    const named = new Set(entries.map((e) => e.path));
    for (const base of ['src', 'native']) {
      const folders = readdirSync(join(ROOT, base), { withFileTypes: true })
        .filter((d) => d.isDirectory() && `${base}/${d.name}` !== 'native/build')
        .map((d) => `${base}/${d.name}/`);
      expect(folders.filter((f) => !named.has(f))).toEqual([]);
    }
  });
});
