import { describe, expect, it } from 'vitest';
import { createDaemonLogger, formatText } from '../../../src/util/logger.js';

describe('daemon log format', () => {
  it('renders pino lines as dockerd-style text', () => {
    const line = JSON.stringify({ level: 30, time: '2026-01-01T00:00:00.000Z', pid: 1, sub: 'api', path: '/run/berth/docker.sock', msg: 'API listening' });
    expect(formatText(line)).toBe('time="2026-01-01T00:00:00.000Z" level=info msg="API listening" sub=api path=/run/berth/docker.sock\n');
    const err = JSON.stringify({ level: 50, time: 't', msg: 'failed', err: { message: 'boom', stack: '...' }, note: 'two words' });
    expect(formatText(err)).toBe('time="t" level=error msg="failed" note="two words" error="boom"\n');
  });

  it('writes text or JSON, and a level change reaches children made before it', () => {
    const out: string[] = [];
    const sink = { write: (s: string) => void out.push(s) };
    const text = createDaemonLogger('info', 'text', sink);
    const child = text.log.child({ sub: 'x' });
    child.debug('hidden');
    child.info('shown');
    text.setLevel('debug');
    child.debug('now shown');
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^time=".*" level=info msg="shown" sub=x\n$/);
    expect(out[1]).toMatch(/level=debug msg="now shown"/);
    const json: string[] = [];
    createDaemonLogger('info', 'json', { write: (s: string) => void json.push(s) }).log.info({ a: 1 }, 'hi');
    expect(JSON.parse(json[0] as string)).toMatchObject({ level: 30, a: 1, msg: 'hi' });
  });

  it('answers isLevelEnabled from the adjustable threshold, in children made before a change too', () => {
    const d = createDaemonLogger('warn', 'json', { write: () => undefined });
    const child = d.log.child({ sub: 'x' }).child({ part: 'y' });
    expect(child.isLevelEnabled('debug')).toBe(false);
    expect(child.isLevelEnabled('error')).toBe(true);
    d.setLevel('debug');
    expect(child.isLevelEnabled('debug')).toBe(true);
    expect(child.isLevelEnabled('trace')).toBe(false);
  });
});
