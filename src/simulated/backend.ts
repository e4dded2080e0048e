// The SIMULATED backend: file-backed A/B slots in a directory, a simulated bootloader, and a
// simulated reboot (the agent process exits with REBOOT_EXIT_CODE and its supervisor starts it
// again, which is the "boot"). It serves the demo and logic tests. It is never evidence that
// RAUC or OSTree work: their own backends are tested against the real services.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod';
import type { BootInfo, EffectContext, RebootOutcome, SlotInfo, UpdateBackend } from '../core/backend.js';
import type { Announcement } from '../schemas/announcement.js';
import { Version } from '../schemas/common.js';
import { chooseBootSlot, otherSlot, readBootloader, writeBootloader, writeFileDurable, type SlotName } from './bootloader.js';
import { encodeSimImage, SimImage } from './image.js';

/** Exit code of a simulated reboot: "restart me, the bootloader decides what runs". */
export const REBOOT_EXIT_CODE = 75;

export const SimulatedOptions = z
  .object({
    type: z.literal('simulated'),
    dir: z.string().regex(/^\//, 'an absolute path').describe('where the slots and the bootloader state live'),
    initialVersion: Version.default('1.0.0'),
    initialFiles: z.record(z.string(), z.string()).default({ health: 'ok' }),
    installDelayMs: z.number().int().min(0).max(600_000).default(0).describe('stretches the install, for demos and crash tests'),
  })
  .strict();
export type SimulatedOptions = z.infer<typeof SimulatedOptions>;

export class SimulatedBackend implements UpdateBackend {
  readonly name = 'simulated';
  readonly handles = 'rauc' as const; // it simulates a RAUC-style A/B device and takes rauc announcements
  private readonly dir: string;

  constructor(
    private readonly opts: SimulatedOptions,
    private readonly compatible: string,
    private readonly downloadDir: string,
    private readonly allowedHosts?: readonly string[],
  ) {
    this.dir = opts.dir;
  }

  /** Powers the simulated device on: first boot initialises slot A, later ones run the bootloader. */
  static async open(opts: SimulatedOptions, compatible: string, downloadDir: string, inspectOnly = false, allowedHosts?: readonly string[]): Promise<SimulatedBackend> {
    const b = new SimulatedBackend(opts, compatible, downloadDir, allowedHosts);
    if (!inspectOnly) b.powerOn();
    return b;
  }

  private slotPath(s: SlotName): string {
    return join(this.dir, `slot-${s}.img`);
  }

  private readImage(s: SlotName): SimImage | null {
    try {
      return SimImage.parse(JSON.parse(readFileSync(this.slotPath(s), 'utf8')));
    } catch {
      return null;
    }
  }

  private powerOn(): void {
    mkdirSync(this.dir, { recursive: true });
    let bl = readBootloader(this.dir);
    if (!bl) {
      writeFileDurable(this.slotPath('A'), encodeSimImage({ format: 'ota-sim-image/1', compatible: this.compatible, version: this.opts.initialVersion, files: this.opts.initialFiles }));
      bl = { primary: 'A', state: { A: 'good', B: 'bad' }, booted: 'A', bootCount: 0 };
      writeFileSync(join(this.dir, 'reboot-requested'), 'first boot');
    }
    if (existsSync(join(this.dir, 'reboot-requested'))) {
      const { slot, state } = chooseBootSlot(bl, (s) => this.readImage(s)?.bootable === true);
      writeBootloader(this.dir, state);
      this.extractRootfs(slot);
      rmSync(join(this.dir, 'reboot-requested'), { force: true });
    }
  }

  /** The booted slot's files, where health checks (and people) can look at them. */
  private extractRootfs(slot: SlotName): void {
    const root = join(this.dir, 'booted');
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    const img = this.readImage(slot);
    for (const [name, content] of Object.entries(img?.files ?? {})) writeFileSync(join(root, name), content);
    writeFileSync(join(root, 'version'), `${img?.version ?? 'unknown'}\n`);
  }

  private bl() {
    const bl = readBootloader(this.dir);
    if (!bl) throw new Error(`simulated bootloader state missing in ${this.dir}`);
    return bl;
  }

  async bootInfo(): Promise<BootInfo> {
    const bl = this.bl();
    return { bootId: `sim-boot-${bl.bootCount}`, bootedSlot: bl.booted, version: this.readImage(bl.booted)?.version ?? '0.0.0' };
  }

  async slots(): Promise<SlotInfo[]> {
    const bl = this.bl();
    return (['A', 'B'] as const).map((s) => {
      const img = this.readImage(s);
      return { name: s, booted: bl.booted === s, primary: bl.primary === s, bootStatus: bl.state[s], ...(img ? { version: img.version } : {}) };
    });
  }

  private downloadPath(a: Announcement): string {
    if (a.backend !== 'rauc') throw new Error('the simulated backend takes rauc-style announcements only');
    // The file name comes from the validated hex digest, never from a path in the message.
    return join(this.downloadDir, `${a.artifact.sha256}.img`);
  }

  async download(a: Announcement, ctx: EffectContext): Promise<void> {
    if (a.backend !== 'rauc') throw new Error('the simulated backend takes rauc-style announcements only');
    mkdirSync(this.downloadDir, { recursive: true, mode: 0o700 });
    const { fetchArtifact } = await import('../fetch/index.js');
    await fetchArtifact({
      url: a.artifact.url,
      destPath: this.downloadPath(a),
      sha256: a.artifact.sha256,
      size: a.artifact.size,
      signal: ctx.signal,
      onProgress: (got, total) => ctx.progress('downloading', total > 0 ? (100 * got) / total : 0),
      allowedHosts: this.allowedHosts,
    });
  }

  async inspectArtifact(path: string): Promise<{ compatible: string; version: string }> {
    const img = SimImage.parse(JSON.parse(readFileSync(path, 'utf8')));
    return { compatible: img.compatible, version: img.version };
  }

  async install(a: Announcement, ctx: EffectContext): Promise<{ newSlot: string; oldSlot: string }> {
    const bl = this.bl();
    const target = otherSlot(bl.booted);
    let img: SimImage;
    try {
      img = SimImage.parse(JSON.parse(readFileSync(this.downloadPath(a), 'utf8')));
    } catch (e) {
      throw new Error(`invalid simulated image: ${(e as Error).message.split('\n')[0]}`, { cause: e });
    }
    if (img.compatible !== this.compatible) throw new Error(`Compatible mismatch: expected '${this.compatible}' but image has '${img.compatible}'`);
    if (img.version !== a.version) throw new Error(`image version ${img.version} differs from announced ${a.version}`);
    // Like RAUC: the target is marked bad while it is written, and made primary (and good) afterwards.
    writeBootloader(this.dir, { ...bl, state: { ...bl.state, [target]: 'bad' } });
    const steps = 10;
    for (let i = 1; i <= steps; i++) {
      if (this.opts.installDelayMs > 0) await sleep(this.opts.installDelayMs / steps, undefined, { signal: ctx.signal });
      ctx.progress('installing', (100 * i) / steps);
    }
    writeFileDurable(this.slotPath(target), readFileSync(this.downloadPath(a)));
    const after = this.bl();
    writeBootloader(this.dir, { ...after, primary: target, state: { ...after.state, [target]: 'good' } });
    return { newSlot: target, oldSlot: bl.booted };
  }

  async reboot(_reason: string): Promise<RebootOutcome> {
    writeFileDurable(join(this.dir, 'reboot-requested'), _reason);
    return { kind: 'exit-process', exitCode: REBOOT_EXIT_CODE };
  }

  async markGood(): Promise<void> {
    const bl = this.bl();
    writeBootloader(this.dir, { ...bl, state: { ...bl.state, [bl.booted]: 'good' } });
  }

  async revert(): Promise<void> {
    const bl = this.bl();
    const other = otherSlot(bl.booted);
    writeBootloader(this.dir, { ...bl, primary: other, state: { ...bl.state, [bl.booted]: 'bad', [other]: 'good' } });
  }

  async rollbackTarget(): Promise<{ slot: string; version: string } | null> {
    const bl = this.bl();
    const other = otherSlot(bl.booted);
    const img = this.readImage(other);
    return img && img.bootable ? { slot: other, version: img.version } : null;
  }

  async activateRollback(): Promise<void> {
    const bl = this.bl();
    const other = otherSlot(bl.booted);
    writeBootloader(this.dir, { ...bl, primary: other, state: { ...bl.state, [other]: 'good' } });
  }

  async discardDownload(a: Announcement): Promise<void> {
    rmSync(this.downloadPath(a), { force: true });
    rmSync(`${this.downloadPath(a)}.part`, { force: true });
  }

  async keepBootedSlot(): Promise<void> {
    const bl = this.bl();
    if (bl.primary !== bl.booted) writeBootloader(this.dir, { ...bl, primary: bl.booted });
  }

  async close(): Promise<void> {}
}
