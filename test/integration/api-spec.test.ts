import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { specRoutes, validateResponse } from '../helpers/api-spec.js';

describe('every route in api-spec/berth.yaml', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d.stop();
  });

  for (const { method, path, op } of specRoutes()) {
    if (op['x-hijack']) continue;
    it(`${method} ${path} answers and matches its documented schema`, async () => {
      const concrete = path.replace(/\{[^}]+\}/g, 'berth-probe-missing');
      const query = op['x-test-query'] ? `?${op['x-test-query']}` : '';
      for (const prefix of ['', '/v1.50', '/v1.41']) {
        const res = await d.request(method, `${prefix}${concrete}${query}`);
        const isJson = res.headers['content-type'] === 'application/json';
        if (res.status === 404 && isJson) expect(res.json<{ message: string }>().message).not.toBe('page not found');
        // x-test-status: statuses the probe may legitimately get (a registry route cannot reach Docker Hub offline).
        if (!(op['x-test-status'] ?? []).includes(res.status)) expect(res.status, `${prefix}${concrete}: ${res.text()}`).toBeLessThan(500);
        if (isJson && res.body.length > 0 && !res.text().includes('\n{')) {
          expect(validateResponse(method, path, res.status, res.json())).toEqual([]);
        }
      }
    });
  }
});
