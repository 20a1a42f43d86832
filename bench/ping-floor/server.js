// A do-nothing HTTP server in Node answering /_ping with dockerd's headers on a unix socket: the floor for the
// "/_ping on a kept-alive connection" figure on Node's side (no routing, no hooks, no version check).
import { createServer } from 'node:http';
import { rmSync } from 'node:fs';

const sock = process.argv[2];
rmSync(sock, { force: true });
const headers = {
  'api-version': '1.50', 'cache-control': 'no-cache, no-store, must-revalidate',
  'docker-experimental': 'false', ostype: 'linux', pragma: 'no-cache', server: 'Docker/20.10.24+dfsg1 (linux)',
  'content-type': 'text/plain; charset=utf-8', 'content-length': '2',
};
createServer((_req, res) => {
  res.writeHead(200, headers);
  res.end('OK');
}).listen(sock, () => process.stdout.write('ready\n'));
