import type { ContainerView } from '../containers/types.js';
import { labelsMatch, msg, str, strMap } from './messages.js';

// Finding and listing CRI objects (pod sandboxes, containers) among the container service's records: one lookup
// by ID or unique ID prefix, one reading of the CRI's list filters (PodSandboxFilter, ContainerFilter and their
// stats variants share the fields id, state, label_selector and, for containers, pod_sandbox_id).

/** The object with this full ID, or the only one whose ID starts with it. */
export function findByIdOrPrefix(all: ContainerView[], id: string): ContainerView | undefined {
  if (id === '') return undefined;
  const exact = all.find((c) => c.id === id);
  if (exact) return exact;
  const matches = all.filter((c) => c.id.startsWith(id));
  return matches.length === 1 ? matches[0] : undefined;
}

/** What a CRI object is matched on: its CRI state name, the kubelet's labels, and (containers) its pod's ID. */
export interface Selectable {
  state: string;
  labels: Record<string, string>;
  sandboxId?: string;
}

/**
 * The objects a CRI list filter selects: ID and pod sandbox ID by prefix (crictl passes truncated IDs), the state
 * when the filter has one, every key=value of the label selector. An unset filter selects everything.
 */
export function selectByFilter(all: ContainerView[], filter: unknown, describe: (c: ContainerView) => Selectable): ContainerView[] {
  const f = msg(filter);
  const id = str(f.id);
  const sandbox = str(f.pod_sandbox_id);
  const state = f.state ? str(msg(f.state).state) : '';
  const selector = strMap(f.label_selector);
  return all.filter((c) => {
    if (id !== '' && !c.id.startsWith(id)) return false;
    const s = describe(c);
    if (sandbox !== '' && !(s.sandboxId ?? '').startsWith(sandbox)) return false;
    return (state === '' || s.state === state) && labelsMatch(s.labels, selector);
  });
}
