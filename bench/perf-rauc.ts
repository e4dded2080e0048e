// RAUC figure for bench/perf-run.ts: one real `rauc service` (tests/helpers/rauc-testbed.ts) with its
// slots enlarged here (the helper's are 32 MiB; it is not edited), one signed plain bundle of about
// `mib` MiB holding incompressible data, then installs alternating between
//   direct: dbus-next straight to de.pengutronix.rauc.Installer.InstallBundle, waiting for Completed
//   agent:  RaucBackend.install() — the agent's own path (BootSlot, Operation, InstallBundle, Completed /
//           owner / bus watches, GetSlotStatus to find the new slot)
// on the same bundle file. Not part of the test suite.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, linkSync, symlinkSync, mkdirSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import dbus from 'dbus-next';
import { RaucBackend, RaucOptions } from '../src/rauc/backend.js';
import type { Announcement } from '../src/schemas/announcement.js';
import { RaucTestbed, requireBinary } from '../tests/helpers/rauc-testbed.js';
import { median } from './perf-lib.js';

const run = promisify(execFile);

export interface RaucFigure {
  bundleBytes: number;
  directMs: number[];
  agentMs: number[];
  directMedianMs: number;
  agentMedianMs: number;
  ratio: number;
}

/** Writes `mib` MiB of pseudo-random bytes (one random MiB, varied per block so squashfs cannot dedupe). */
function writeRandomFile(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  try {
    const block = randomBytes(2 ** 20);
    for (let i = 0; i < mib; i++) {
      block.writeUInt32LE(i, 0);
      // Different bytes in every 4 KiB page of every block: no two squashfs blocks are equal.
      for (let off = 4096; off < block.length; off += 4096) block.writeUInt32LE((i * 257 + off) >>> 0, off);
      writeSync(fd, block);
    }
  } finally {
    closeSync(fd);
  }
}

/** Same layout as rauc/scripts/build-bundle.sh, plus a large incompressible /payload file. */
async function buildBigBundle(tb: RaucTestbed, version: string, mib: number, work: string): Promise<string> {
  const root = join(work, 'root');
  const content = join(work, 'content');
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(content, { recursive: true });
  writeFileSync(join(root, 'etc', 'os-release'), `NAME="ota-agent perf image"\nID=ota-test\nVERSION_ID=${version}\nVERSION="${version}"\n`);
  writeFileSync(join(root, 'health'), 'ok');
  writeRandomFile(join(root, 'payload'), mib);
  const img = join(content, 'rootfs.ext4');
  await run(requireBinary('truncate'), ['-s', `${mib + 24}M`, img]);
  await run(requireBinary('mkfs.ext4'), ['-q', '-F', '-L', 'rootfs', '-E', 'root_owner=0:0', '-d', root, img]);
  writeFileSync(
    join(content, 'manifest.raucm'),
    `[update]\ncompatible=${tb.compatible}\nversion=${version}\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.ext4\n`,
  );
  const out = join(work, `perf-${version}.raucb`);
  const pki = join(tb.dir, 'pki');
  await run(requireBinary('rauc'), ['bundle', `--cert=${join(pki, 'signer.pem')}`, `--key=${join(pki, 'signer.key')}`, `--keyring=${join(pki, 'ca.pem')}`, content, out], {
    env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
    maxBuffer: 16 * 2 ** 20,
  });
  return out;
}

async function installDirect(busAddress: string, bundle: string): Promise<number> {
  const bus = dbus.sessionBus({ busAddress });
  bus.on('error', () => undefined);
  try {
    const t0 = process.hrtime.bigint();
    const obj = await bus.getProxyObject('de.pengutronix.rauc', '/');
    const iface = obj.getInterface('de.pengutronix.rauc.Installer') as unknown as {
      on(ev: 'Completed', f: (r: number) => void): void;
      InstallBundle(source: string, args: Record<string, unknown>): Promise<void>;
    };
    const done = new Promise<number>((resolve) => iface.on('Completed', resolve));
    await iface.InstallBundle(bundle, {});
    const result = await done;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (result !== 0) throw new Error(`direct InstallBundle completed with ${result}`);
    return ms;
  } finally {
    bus.disconnect();
  }
}

export async function raucFigure(opts: { mib: number; rounds: number; work: string; log: (l: string) => void }): Promise<RaucFigure> {
  // The compiled helper looks for rauc/scripts/ next to its own build root (.tmp/bench/): point it at the repo's.
  const scripts = fileURLToPath(new URL('../rauc', import.meta.url)); // .tmp/bench/bench/ -> .tmp/bench/rauc
  if (!existsSync(scripts)) symlinkSync(fileURLToPath(new URL('../../../rauc', import.meta.url)), scripts);
  const tb = await RaucTestbed.create({ compatible: 'perf-gw' });
  try {
    // Bigger slots than the helper's 32 MiB: stop rauc, grow both slot files (A keeps its ext4), restart.
    const slotMiB = opts.mib + 64;
    await tb.stopRauc();
    await run(requireBinary('truncate'), ['-s', `${slotMiB}M`, tb.slotPath('A'), tb.slotPath('B')]);
    await tb.startRauc('A');
    opts.log(`rauc: building a ~${opts.mib} MiB bundle (slots grown to ${slotMiB} MiB)`);
    const bundle = await buildBigBundle(tb, '2.0.0', opts.mib, opts.work);
    const size = statSync(bundle).size;
    const sha256 = createHash('sha256');
    for await (const c of createReadStream(bundle) as AsyncIterable<Buffer>) sha256.update(c);
    const digest = sha256.digest('hex');
    const downloads = join(opts.work, 'downloads');
    mkdirSync(downloads, { recursive: true });
    // The agent installs from <downloads>/<sha256>.raucb: the same inode, so the same page cache.
    linkSync(bundle, join(downloads, `${digest}.raucb`));
    const backend = new RaucBackend(
      RaucOptions.parse({ type: 'rauc', busAddress: tb.busAddress, bootIdFile: tb.bootIdFile, fallbackVersion: '1.0.0', installTimeoutMs: 600_000 }),
      downloads,
    );
    const announcement = { backend: 'rauc', version: '2.0.0', artifact: { url: 'http://127.0.0.1/unused', sha256: digest, size } } as unknown as Announcement;
    const ctx = { signal: new AbortController().signal, progress: () => undefined };
    const agentInstall = async (): Promise<number> => {
      const t0 = process.hrtime.bigint();
      await backend.install(announcement, ctx);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };

    opts.log('rauc: warm-up install (direct, not counted)');
    await installDirect(tb.busAddress, bundle);
    const directMs: number[] = [];
    const agentMs: number[] = [];
    for (let i = 0; i < opts.rounds; i++) {
      // Alternate the order so that neither side always runs on a warmer cache.
      if (i % 2 === 0) {
        directMs.push(await installDirect(tb.busAddress, bundle));
        agentMs.push(await agentInstall());
      } else {
        agentMs.push(await agentInstall());
        directMs.push(await installDirect(tb.busAddress, bundle));
      }
      opts.log(`rauc: round ${i + 1}: direct ${directMs.at(-1)?.toFixed(0)} ms, agent ${agentMs.at(-1)?.toFixed(0)} ms`);
    }
    const d = median(directMs);
    const a = median(agentMs);
    return { bundleBytes: size, directMs, agentMs, directMedianMs: d, agentMedianMs: a, ratio: a / d };
  } finally {
    await tb.close();
  }
}
