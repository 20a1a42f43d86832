// The floor of berthd's idle memory: the stack the design card fixes (Node, Fastify with a pino logger,
// better-sqlite3 with a WAL database) answering /_ping on a unix socket and doing nothing else, with what berthd
// does for its own idle memory (V8's relaxed tiering during the start, the idle trim). Needs a build (dist/).
//   node <berthd's node flags> bench/stack-floor/server.mjs <socket path>
import { restoreTiering } from '../../dist/system/start-tiering.js';
import { IdleTrim } from '../../dist/system/idle-trim.js';
import { nativeAddon } from '../../dist/native.js';
import Fastify from 'fastify';
import Database from 'better-sqlite3';

const sock = process.argv[2];
const db = new Database(`${sock}.db`);
db.pragma('journal_mode = WAL');
const app = Fastify({ logger: { level: 'warn' } });
app.get('/_ping', async () => 'OK');
app.listen({ path: sock }, (err) => {
  if (err) throw err;
  restoreTiering();
  new IdleTrim({ heap: () => nativeAddon().reduceHeap(), malloc: () => nativeAddon().mallocTrim() }).start();
  process.stdout.write('ready\n');
});
