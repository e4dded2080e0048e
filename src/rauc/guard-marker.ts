// The on-disk half of the BootedSlotGuard: a small file that says "the booted slot must be made the
// next boot again once RAUC is idle", so that an agent restarted (kill -9, crash, systemd restart)
// while RAUC is still busy with an install it gave up on resumes the guard instead of forgetting it.
//
// Written durably (temp file, fsync, rename, fsync of the directory) before the guard acts, removed
// (and the removal made durable) when it is done or cancelled. It records the boot it was written on:
// a reboot ends whatever install RAUC was running, so a marker from an earlier boot is stale and is
// removed instead of resumed (on a new boot the agent's own boot check decides about the slots).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface GuardMarkerState {
  /** The boot the guard was armed on (the backend's bootIdFile). */
  bootId: string;
  /** When the guard gives up (ms since the epoch); a restart does not extend it. */
  until: number;
}

export class GuardMarker {
  constructor(
    readonly path: string,
    private readonly bootIdFile: string,
  ) {}

  private bootId(): string {
    return readFileSync(this.bootIdFile, 'utf8').trim();
  }

  /** Records the guard as armed until `until`, on this boot; durable when it returns. */
  set(until: number): void {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    const state: GuardMarkerState = { bootId: this.bootId(), until };
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeFileSync(fd, JSON.stringify(state) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    syncDir(dir);
  }

  /** Removes the record (durably); nothing to do when there is none. */
  clear(): void {
    try {
      unlinkSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    syncDir(dirname(this.path));
  }

  /**
   * The deadline of a guard armed on this boot, or null when there is none. A marker from an earlier
   * boot is removed. One that cannot be parsed (not written by this code: the rename is atomic)
   * counts as armed for the full time: keeping the booted slot first is the safe side.
   */
  pending(fullTimeMs: number): number | null {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    let state: Partial<GuardMarkerState>;
    try {
      state = JSON.parse(text) as Partial<GuardMarkerState>;
    } catch {
      return Date.now() + fullTimeMs;
    }
    if (typeof state.bootId !== 'string' || typeof state.until !== 'number') return Date.now() + fullTimeMs;
    if (state.bootId !== this.bootId()) {
      this.clear();
      return null;
    }
    return state.until;
  }
}

/** fsync of a directory: makes a rename or unlink in it survive a power cut. */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
