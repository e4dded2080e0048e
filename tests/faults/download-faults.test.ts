// Download faults, end to end (real mosquitto, the agent process, the simulated A/B device):
// the connection dropped in the middle of the transfer (the agent resumes with Range and
// commits), a server that returns other bytes than announced (sha256 refuses them), and a full
// disk — a small tmpfs mounted by the test as the download directory — both when the artifact
// cannot fit from the start and when the disk fills up during the transfer: a clear reason, no
// partial file left, nothing installed. Needs root (mount). Figures in docs/reliability.md.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeSimImage } from '../../src/simulated/image.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab, type LabDevice } from '../helpers/sim-lab.js';
import { record } from './lib/summary.js';

let broker: Mosquitto;
let lab: SimLab;
let server: Server;
let base = '';
/** What the faulty server does per request; `requests` logs "GET /name [Range]". */
const served = new Map<string, { bytes: Buffer; mode: 'drop-first' | 'wrong-bytes' | 'slow' }>();
const requests: string[] = [];
const mounts: string[] = [];
const outcomes: Array<{ fault: string; result: string; reason?: string | undefined; message: string; seconds: number }> = [];

beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
  const dropped = new Set<string>();
  server = createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    requests.push(`GET /${name}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    const f = served.get(name);
    if (!f) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const body = f.mode === 'wrong-bytes' ? Buffer.alloc(f.bytes.length, 0x41) : f.bytes;
    res.writeHead(m ? 206 : 200, { 'content-length': String(body.length - start), ...(m ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
    if (f.mode === 'drop-first' && !dropped.has(name)) {
      // Half the body, then the connection is cut (a TCP reset, as a flaky link does).
      dropped.add(name);
      res.write(body.subarray(start, Math.floor(body.length / 2)), () => setTimeout(() => req.socket.destroy(), 50));
      return;
    }
    if (f.mode === 'slow') {
      let at = start;
      const tick = setInterval(() => {
        const chunk = body.subarray(at, at + 32 * 1024);
        at += chunk.length;
        if (chunk.length) res.write(chunk);
        if (at >= body.length) {
          clearInterval(tick);
          res.end();
        }
      }, 100);
      res.on('close', () => clearInterval(tick));
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(() => {
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
});
afterAll(async () => {
  record('download-faults', {
    scenario: 'download faults (dropped connection, wrong bytes, disk full x2)',
    runs: outcomes.length,
    converged: outcomes.filter((o) => (o.fault === 'connection dropped' ? o.result === 'committed' : o.result === 'failed')).length,
    lost: 0,
    duplicated: 0,
    seconds: Math.round(outcomes.reduce((n, o) => n + o.seconds, 0)),
    outcomes,
  });
  await new Promise((r) => server.close(r));
  await lab?.close();
  await broker?.stop();
});

function image(dev: LabDevice, version: string, padBytes: number, mode: 'drop-first' | 'wrong-bytes' | 'slow') {
  const bytes = encodeSimImage({ format: 'ota-sim-image/1', compatible: dev.compatible, version, bootable: true, files: { health: 'ok', padding: 'x'.repeat(padBytes) } });
  const name = `${dev.compatible}-${version}-${mode}.img`;
  served.set(name, { bytes, mode });
  return { url: `${base}/${name}`, name, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

async function run(fault: string, dev: LabDevice, img: ReturnType<typeof image>, during?: () => Promise<void>) {
  const t0 = Date.now();
  const a = lab.announcement(dev, '1.1.0', { patch: { artifact: { url: img.url, sha256: img.sha256, size: img.size } } });
  await lab.announce(dev, a);
  if (during) await during();
  const r = await lab.watcher.waitForResult(dev.id, a.id, 90_000).catch((e: Error) => {
    throw new Error(`${fault}: ${e.message}\n${dev.logs.slice(-20).join('\n')}`);
  });
  await lab.watcher.waitFor(() => lab.watcher.states.get(dev.id)?.state === 'idle' && lab.watcher.states.get(dev.id), 20_000, 'idle');
  outcomes.push({ fault, result: r.result ?? 'none', reason: r.reason, message: r.message ?? '', seconds: (Date.now() - t0) / 1000 });
  return r;
}

/** A tmpfs of `size` as the device's download directory (mounted before the first download). */
function smallDisk(dev: LabDevice, size: string): string {
  const dir = join(dev.dir, 'state', 'downloads');
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

describe('download faults', () => {
  it('connection dropped mid-transfer: the agent resumes with Range from where it stopped and commits', async () => {
    const dev = await lab.device();
    const img = image(dev, '1.1.0', 400_000, 'drop-first');
    const r = await run('connection dropped', dev, img);
    expect(r.result).toBe('committed');
    const mine = requests.filter((q) => q.includes(img.name));
    expect(mine.length).toBeGreaterThanOrEqual(2);
    expect(mine[0]).not.toMatch(/bytes=/);
    // The retry asked only for what was missing: a Range from a non-zero offset.
    expect(mine.slice(1).some((q) => /bytes=[1-9]\d*-/.test(q))).toBe(true);
  });

  it('wrong bytes from the server: sha256 refuses them; no partial file is left and nothing is installed', async () => {
    const dev = await lab.device();
    const slots = dev.slotsDigest();
    const img = image(dev, '1.1.0', 50_000, 'wrong-bytes');
    const r = await run('wrong bytes', dev, img);
    expect(r).toMatchObject({ result: 'failed', reason: 'DOWNLOAD_FAILED' });
    expect(r.message).toMatch(/sha256/);
    expect(readdirSync(join(dev.dir, 'state', 'downloads'))).toEqual([]);
    expect(dev.slotsDigest()).toBe(slots);
  });

  it('disk full from the start: refused before the transfer with the space it needs; nothing installed', async () => {
    const dev = await lab.device();
    const slots = dev.slotsDigest();
    const dir = smallDisk(dev, '256k');
    const img = image(dev, '1.1.0', 600_000, 'slow');
    const r = await run('disk full (too small from the start)', dev, img);
    expect(r).toMatchObject({ result: 'failed', reason: 'DOWNLOAD_FAILED' });
    expect(r.message).toMatch(/not enough free space/);
    expect(readdirSync(dir)).toEqual([]);
    expect(dev.slotsDigest()).toBe(slots);
  });

  it('disk filling up during the transfer: ENOSPC is a clear failure; the partial file is removed; nothing installed', async () => {
    const dev = await lab.device();
    const slots = dev.slotsDigest();
    const dir = smallDisk(dev, '1m');
    const img = image(dev, '1.1.0', 600_000, 'slow');
    const r = await run('disk full (filled during the transfer)', dev, img, async () => {
      // Another writer takes the space once the transfer is under way.
      await lab.watcher.waitFor(() => readdirSync(dir).some((f) => f.endsWith('.part')), 20_000, 'a .part on the small disk');
      try {
        writeFileSync(join(dir, 'filler'), Buffer.alloc(900 * 1024));
      } catch {
        // ENOSPC for the filler itself is fine: the disk is full either way.
      }
    });
    expect(r).toMatchObject({ result: 'failed', reason: 'DOWNLOAD_FAILED' });
    expect(r.message).toMatch(/ENOSPC|no space|not enough free space/i);
    expect(readdirSync(dir).filter((f) => f !== 'filler')).toEqual([]);
    expect(dev.slotsDigest()).toBe(slots);
  });
});
