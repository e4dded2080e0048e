// The one interface every update backend implements (simulated, RAUC, OSTree). The core and the
// agent only ever talk to this; adding a backend means a new folder and a line in
// src/backends/registry.ts, never a change here.
import type { Announcement } from '../schemas/announcement.js';

export interface BootInfo {
  /** Changes on every boot; equal ids before and after mean "no reboot happened". */
  bootId: string;
  /** Slot (RAUC bootname, OSTree deployment checksum, ...) the running system booted from. */
  bootedSlot: string;
  /** Version of what runs now. */
  version: string;
}

export interface SlotInfo {
  name: string;
  booted: boolean;
  primary?: boolean;
  version?: string;
  /** Bootloader's view: good, bad, or unknown. */
  bootStatus?: string;
  details?: Record<string, string | number | boolean>;
}

export interface EffectContext {
  signal: AbortSignal;
  progress: (phase: string, percent: number) => void;
}

export type RebootOutcome =
  /** The system is going down; the agent waits to be stopped. */
  | { kind: 'requested' }
  /** Simulated reboot: the agent process must exit with this code and its supervisor "boots" it again. */
  | { kind: 'exit-process'; exitCode: number };

export interface UpdateBackend {
  readonly name: string;
  /** Which announcements it can carry out. */
  readonly handles: Announcement['backend'];
  bootInfo(): Promise<BootInfo>;
  slots(): Promise<SlotInfo[]>;
  /** Reads compatible and version from a local artifact (offline install); throws if it is not one. */
  inspectArtifact(path: string): Promise<{ compatible: string; version: string }>;
  /** Idempotent and resumable: called again after a crash. */
  download(a: Announcement, ctx: EffectContext): Promise<void>;
  /** Writes the inactive slot and makes it the next boot's choice. Idempotent. */
  install(a: Announcement, ctx: EffectContext): Promise<{ newSlot: string; oldSlot: string }>;
  reboot(reason: string): Promise<RebootOutcome>;
  /** The new boot passed its checks: make it permanent. */
  markGood(): Promise<void>;
  /** The new boot failed: mark it bad and make the previous slot the next boot's choice. */
  revert(): Promise<void>;
  /** Make the other (previous) slot the next boot's choice; returns its slot and version. */
  rollbackTarget(): Promise<{ slot: string; version: string } | null>;
  activateRollback(): Promise<void>;
  /** Removes the downloaded artifact (after any terminal state). Idempotent. */
  discardDownload(a: Announcement): Promise<void>;
  /** After a failure before the reboot: make the running slot the next boot's choice again. */
  keepBootedSlot(): Promise<void>;
  close(): Promise<void>;
}
