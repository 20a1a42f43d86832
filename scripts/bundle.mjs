#!/usr/bin/env node
// Build step: dist/main.js, what berthd runs (npm start, the systemd unit, the tests and the benches), as one
// ES module bundle of src/ and the dependencies a daemon start needs (Fastify, pino), with the subsystems loaded at
// first use (build, CRI, NRI, image save…) in chunks beside it. Unbundled, a start resolves and loads ~400 files
// through Node's ESM and CJS loaders (URL and path helpers called thousands of times, cjs-module-lexer over the CJS
// packages imported from ESM): enough to make V8 optimize two dozen loader functions with TurboFan, whose compiler
// code and memory then stay resident in an idle daemon. tsc's per-file output stays in dist/ for the benches that
// import single modules; only main.js is replaced.
//
// No identifier minification and no renaming beyond esbuild's collision suffixes: stack traces keep the source's
// function names. Paths under the project root come from src/package-root.ts, which is one level below the root
// both in src/ and in dist/, so the bundle and its chunks must stay directly in dist/.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
for (const f of readdirSync(dist)) if (/^chunk-[A-Z0-9]+\.js$/.test(f) || /^chunk-[A-Z0-9]+\.js\.map$/.test(f)) rmSync(`${dist}/${f}`);

/**
 * Fastify's lib/server.js requires node:https, node:http2 and node:dns when it loads, for servers and listen()
 * calls Berth never makes (Berth gives Fastify's plain HTTP server the connections its own listeners accept): ~2.8
 * MiB of an idle berthd with node:tls, which they pull in. In the bundle they load at first property access.
 */
const fastifyLazyBuiltins = {
  name: 'fastify-lazy-builtins',
  setup(b) {
    b.onLoad({ filter: /[\\/]fastify[\\/]lib[\\/]server\.js$/ }, (args) => {
      let src = readFileSync(args.path, 'utf8');
      for (const m of ['https', 'http2', 'dns']) {
        const line = `const ${m} = require('node:${m}')`;
        if (!src.includes(line)) throw new Error(`${args.path} no longer has "${line}": update scripts/bundle.mjs`);
        src = src.replace(line, `const ${m} = lazyBuiltin('node:${m}')`);
      }
      src += '\nfunction lazyBuiltin(name) {\n  let m\n  return new Proxy({}, { get: (_, key) => (m ??= require(name))[key] })\n}\n';
      return { contents: src, loader: 'js' };
    });
  },
};

await build({
  absWorkingDir: root,
  entryPoints: { main: 'src/main.ts' },
  outdir: 'dist',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Outside the bundle, loaded by Node from node_modules when first required: the gRPC stack of the CRI and NRI
  // (protobufjs requires by computed names), and what Fastify requires only for features Berth does not use at
  // start (its default validator and serializer compilers, inject()) or that Berth loads at its first validated
  // request (ajv): bundled, their ~500 kB of source would sit in every daemon's heap. better-sqlite3's JavaScript is bundled; its
  // addon is loaded by path (src/metadata/database.ts).
  external: ['@grpc/grpc-js', '@grpc/proto-loader', 'ajv', 'ajv-formats', 'fast-uri', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'],
  // Bundled CommonJS (Fastify, pino) calls require() for Node's builtins: give the module one.
  banner: { js: "import { createRequire as __berthCreateRequire } from 'node:module';\nconst require = __berthCreateRequire(import.meta.url);" },
  legalComments: 'none',
  // Whitespace and comments out, names kept. The source text stays resident in V8 for lazy compilation: unminified,
  // main.js is 2.2 MB, and a single non-Latin-1 character in a comment (…, →) makes V8 hold all of it as UTF-16
  // (4.4 MB); minified it is 1.5 MB of ASCII (an idle berthd 3.6 MiB smaller). Positions in stack traces map back
  // through dist/main.js.map (node --enable-source-maps, or any source-map tool); function names need no map.
  minifyWhitespace: true,
  sourcemap: 'linked',
  sourcesContent: false,
  plugins: [fastifyLazyBuiltins],
  logLevel: 'warning',
});
