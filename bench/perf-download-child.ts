// Child process of bench/perf-run.ts's download phase: one downloadArtifact in a fresh process, so
// that its RSS before/peak is the download's and not the bench's leftovers. Prints one JSON line.
//   node perf-download-child.js URL DEST SHA256 SIZE [fixed-buffer|node-http] [CA-FILE]
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { downloadArtifact, type HttpClientChoice } from '../src/fetch/download.js';
import { peakRssOf, resetPeakRss, rssOf } from './perf-lib.js';

async function main(): Promise<void> {
  const [url, destPath, sha256, size, client = 'fixed-buffer', caFile] = process.argv.slice(2);
  if (!url || !destPath || !sha256 || !size) throw new Error('usage: perf-download-child URL DEST SHA256 SIZE [fixed-buffer|node-http]');
  if (client !== 'fixed-buffer' && client !== 'node-http') throw new Error(`unknown client ${client}`);
  const httpClient: HttpClientChoice = client;
  await sleep(200); // let start-up settle
  const before = rssOf('self') ?? 0;
  const reset = resetPeakRss('self');
  let sampled = before;
  const timer = setInterval(() => (sampled = Math.max(sampled, rssOf('self') ?? 0)), 50);
  const t0 = process.hrtime.bigint();
  const tls = caFile === undefined ? {} : { tls: { ca: readFileSync(caFile, 'utf8') } };
  await downloadArtifact({ url, destPath, sha256, size: Number(size), httpClient, ...tls });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  clearInterval(timer);
  const peak = Math.max(sampled, reset ? (peakRssOf('self') ?? 0) : 0);
  process.stdout.write(`${JSON.stringify({ ms, before, peak, hwmReset: reset })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
