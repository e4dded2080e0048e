// The SIMULATED bootloader of the emulated device. Its "environment" is a set of files on the 9p
// host share (boot/primary, boot/state.A, boot/state.B), written inside the VM by RAUC through the
// custom bootloader backend (/usr/libexec/ota-vm/bootloader-backend, see build-image.sh), which
// also logs every call to boot/calls.log. At every power-on the test asks it which slot to boot:
// the primary slot if its state is good, else the other one (what U-Boot's BOOT_ORDER/BOOT_x_LEFT
// or GRUB's ORDER/x_OK come to after a slot is marked bad). The slot goes on the kernel command
// line as rauc.slot=<slot>.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Slot = 'A' | 'B';

export class SimulatedBootloader {
  readonly dir: string;

  constructor(shareDir: string) {
    this.dir = join(shareDir, 'boot');
  }

  /** A factory-fresh environment: A primary, both slots good (like BOOT_ORDER="A B", LEFT=3). */
  reset(): void {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, 'primary'), 'A\n');
    writeFileSync(join(this.dir, 'state.A'), 'good\n');
    writeFileSync(join(this.dir, 'state.B'), 'good\n');
    writeFileSync(join(this.dir, 'calls.log'), '');
  }

  primary(): Slot {
    return asSlot(readFileSync(join(this.dir, 'primary'), 'utf8').trim(), 'boot/primary');
  }

  state(slot: Slot): 'good' | 'bad' {
    const s = readFileSync(join(this.dir, `state.${slot}`), 'utf8').trim();
    if (s !== 'good' && s !== 'bad') throw new Error(`boot/state.${slot} holds '${s}', expected good or bad`);
    return s;
  }

  /** The slot to boot now. */
  choose(): Slot {
    const p = this.primary();
    return this.state(p) === 'good' ? p : p === 'A' ? 'B' : 'A';
  }

  /** Every backend call RAUC made so far, e.g. "set-primary B", "set-state B good". */
  calls(): string[] {
    return readFileSync(join(this.dir, 'calls.log'), 'utf8').split('\n').filter(Boolean);
  }
}

function asSlot(s: string, what: string): Slot {
  if (s !== 'A' && s !== 'B') throw new Error(`${what} holds '${s}', expected A or B`);
  return s;
}
