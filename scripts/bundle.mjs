// Bundles each CLI with its pure-JS dependencies into one ES module file (dist/bundle/*.mjs).
// Why: measured on the device path (docs/performance.md), one file instead of ~600 modules starts
// faster and idles with less memory, and a release carries a few files instead of a node_modules
// tree. Left outside the bundle and loaded from node_modules at run time: better-sqlite3 (a
// native addon), dbus-next (optional native socket code and dynamic requires), node-cron (loaded
// lazily with require, only for announcements with a window) and aedes (the demo's broker).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
// Usage: node scripts/bundle.mjs [outdir]   (default dist/bundle; cross-build/ bundles into its staging tree)
const outdir = process.argv[2] ?? 'dist/bundle';

// mqtt.js loads worker-timers at start but uses it only in browsers: a stub that throws if used.
const browserOnlyStubs = {
  name: 'browser-only-stubs',
  setup(b) {
    b.onResolve({ filter: /^worker-timers$/ }, () => ({ path: new URL('./bundle-stubs/worker-timers.cjs', import.meta.url).pathname }));
  },
};

// Chunk names carry a content hash: chunks of an earlier build would pile up beside the new ones.
rmSync(join(outdir, 'chunks'), { recursive: true, force: true });

await build({
  entryPoints: { 'ota-agent': 'src/cli/ota-agent.ts', 'ota-fleet': 'src/cli/ota-fleet.ts' },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  // Code behind a dynamic import() (backends, health-check runners, fleet views) goes into chunks
  // loaded only when used; without splitting, their top-level imports (dbus-next among them) would
  // be hoisted into the entry and loaded by every agent at start.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  target: 'node20',
  external: ['better-sqlite3', 'dbus-next', 'dbus-next/*', 'node-cron', 'aedes'],
  // Readable stack traces: function and class names are kept; whitespace, syntax and local
  // identifiers are minified (the source text stays in memory for V8's lazy compilation).
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: true,
  keepNames: true,
  plugins: [browserOnlyStubs],
  // A bundled file has no package.json beside it to read the version from.
  define: { __OTA_AGENT_VERSION__: JSON.stringify(pkg.version) },
  // Some CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __otaCreateRequire } from 'node:module'; const require = __otaCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
