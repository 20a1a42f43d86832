import { describe, expect, it } from 'vitest';
import type { ContainerView } from '../../../src/containers/types.js';
import { findByIdOrPrefix, selectByFilter, type Selectable } from '../../../src/cri/select.js';

const objs = [
  { id: 'aaa111', state: 'CONTAINER_RUNNING', labels: { app: 'web', tier: 'front' }, sandboxId: 'pod1' },
  { id: 'aaa222', state: 'CONTAINER_EXITED', labels: { app: 'web' }, sandboxId: 'pod1' },
  { id: 'bbb333', state: 'CONTAINER_RUNNING', labels: { app: 'db' }, sandboxId: 'pod2' },
];
const views = objs.map((o) => ({ id: o.id }) as ContainerView);
const describeOf = (c: ContainerView): Selectable => objs.find((o) => o.id === c.id) as Selectable;
const ids = (filter: unknown): string[] => selectByFilter(views, filter, describeOf).map((c) => c.id);

describe('CRI object lookup and list filters', () => {
  it('finds by full ID or a unique prefix only', () => {
    expect(findByIdOrPrefix(views, 'aaa111')?.id).toBe('aaa111');
    expect(findByIdOrPrefix(views, 'bbb')?.id).toBe('bbb333');
    expect(findByIdOrPrefix(views, 'aaa')).toBeUndefined(); // ambiguous
    expect(findByIdOrPrefix(views, '')).toBeUndefined();
    expect(findByIdOrPrefix(views, 'ccc')).toBeUndefined();
  });

  it('selects by ID prefix, pod prefix, state and every label of the selector', () => {
    expect(ids(undefined)).toEqual(['aaa111', 'aaa222', 'bbb333']);
    expect(ids({ id: 'aaa' })).toEqual(['aaa111', 'aaa222']);
    expect(ids({ pod_sandbox_id: 'pod2' })).toEqual(['bbb333']);
    expect(ids({ state: { state: 'CONTAINER_RUNNING' } })).toEqual(['aaa111', 'bbb333']);
    expect(ids({ label_selector: { app: 'web' } })).toEqual(['aaa111', 'aaa222']);
    expect(ids({ label_selector: { app: 'web', tier: 'front' } })).toEqual(['aaa111']);
    expect(ids({ id: 'aaa', state: { state: 'CONTAINER_EXITED' }, label_selector: { app: 'web' } })).toEqual(['aaa222']);
    // a sandbox has no pod: a pod_sandbox_id filter selects none of them
    expect(selectByFilter(views, { pod_sandbox_id: 'pod1' }, (c) => ({ ...describeOf(c), sandboxId: undefined }))).toEqual([]);
  });
});
