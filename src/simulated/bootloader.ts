// A file-backed simulated A/B bootloader, with the semantics of RAUC's custom backend
// (../shared/research/rauc-testbed.md): a primary slot and a good/bad state per slot. At "boot" it
// starts the primary if that is good and bootable, else the other slot.
import { existsSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';

export type SlotName = 'A' | 'B';
export interface BootloaderState {
  primary: SlotName;
  state: Record<SlotName, 'good' | 'bad'>;
  booted: SlotName;
  bootCount: number;
}

export const otherSlot = (s: SlotName): SlotName => (s === 'A' ? 'B' : 'A');

export function readBootloader(dir: string): BootloaderState | null {
  const p = join(dir, 'bootloader.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as BootloaderState) : null;
}

/** Atomic replace with fsync: a simulated power cut must never leave a torn bootloader file. */
export function writeFileDurable(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function writeBootloader(dir: string, s: BootloaderState): void {
  writeFileDurable(join(dir, 'bootloader.json'), JSON.stringify(s, null, 2));
}

/** Picks the slot to boot: the primary if good and bootable, otherwise the other one (a fallback). */
export function chooseBootSlot(s: BootloaderState, bootable: (slot: SlotName) => boolean): { slot: SlotName; fellBack: boolean; state: BootloaderState } {
  const next: BootloaderState = { ...s, state: { ...s.state } };
  let slot = s.primary;
  let fellBack = false;
  if (s.state[slot] !== 'good' || !bootable(slot)) {
    // A slot that fails to start is marked bad, as a bootloader with attempt counting would.
    if (!bootable(slot)) next.state[slot] = 'bad';
    slot = otherSlot(slot);
    fellBack = true;
  }
  next.booted = slot;
  next.bootCount = s.bootCount + 1;
  return { slot, fellBack, state: next };
}
