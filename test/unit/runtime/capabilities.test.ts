import { describe, expect, it } from 'vitest';
import {
  CAPABILITIES,
  DEFAULT_CAPABILITIES,
  capabilityMask,
  capabilityNames,
  normalizeCapability,
  privilegedCapabilities,
  tweakCapabilities,
} from '../../../src/runtime/capabilities.js';

describe('capabilities', () => {
  it('numbers every capability up to CAP_CHECKPOINT_RESTORE', () => {
    expect(CAPABILITIES[0]).toBe('CAP_CHOWN');
    expect(CAPABILITIES[21]).toBe('CAP_SYS_ADMIN');
    expect(CAPABILITIES[40]).toBe('CAP_CHECKPOINT_RESTORE');
    expect(CAPABILITIES).toHaveLength(41);
  });

  it("has Docker's 14 defaults with mask 0xa80425fb", () => {
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(capabilityMask(DEFAULT_CAPABILITIES)).toBe(0xa80425fbn);
    expect(capabilityNames(0xa80425fbn).sort()).toEqual([...DEFAULT_CAPABILITIES].sort());
  });

  it('normalises names like Docker', () => {
    expect(normalizeCapability('net_admin')).toBe('CAP_NET_ADMIN');
    expect(normalizeCapability('CAP_NET_ADMIN')).toBe('CAP_NET_ADMIN');
    expect(normalizeCapability('all')).toBe('ALL');
  });

  it('drops then appends', () => {
    const caps = tweakCapabilities(DEFAULT_CAPABILITIES, ['net_admin'], ['NET_RAW', 'cap_mknod']);
    expect(caps).not.toContain('CAP_NET_RAW');
    expect(caps).not.toContain('CAP_MKNOD');
    expect(caps.at(-1)).toBe('CAP_NET_ADMIN');
    expect(caps).toHaveLength(13);
  });

  it('ALL in capAdd grants everything except the drops', () => {
    const caps = tweakCapabilities(DEFAULT_CAPABILITIES, ['ALL'], ['SYS_ADMIN']);
    expect(caps).toHaveLength(40);
    expect(caps).not.toContain('CAP_SYS_ADMIN');
  });

  it('ALL in capDrop keeps exactly the adds', () => {
    expect(tweakCapabilities(DEFAULT_CAPABILITIES, ['chown'], ['all'])).toEqual(['CAP_CHOWN']);
    expect(tweakCapabilities(DEFAULT_CAPABILITIES, [], ['ALL'])).toEqual([]);
  });

  it('rejects unknown names with Docker\'s message', () => {
    expect(() => tweakCapabilities(DEFAULT_CAPABILITIES, ['foo'], [])).toThrow('unknown capability: "CAP_FOO"');
    expect(() => tweakCapabilities(DEFAULT_CAPABILITIES, [], ['CAP_ALL'])).toThrow('unknown capability: "CAP_ALL"');
  });

  it('grants what the bounding set holds when privileged', () => {
    const caps = privilegedCapabilities('Name:\tx\nCapBnd:\t000001fffeffffff\n');
    expect(caps).toHaveLength(40);
    expect(caps).not.toContain('CAP_SYS_RESOURCE');
    expect(privilegedCapabilities().length).toBeGreaterThan(0);
  });
});
