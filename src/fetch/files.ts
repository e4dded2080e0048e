import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { DownloadError, errorMessage } from './errors.js';

// Local filesystem failures (EACCES, EROFS, EIO...) have no download error code and are not
// network trouble, so they are tagged and handed to the caller untouched instead of retried.
const localErrors = new WeakSet<object>();

export function isLocalError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && localErrors.has(err);
}

function isNoSpaceError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // EDQUOT: a per-user quota is exhausted, which for us is the same as a full disk.
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function asLocalError(err: unknown, path: string): unknown {
  if (isNoSpaceError(err)) {
    return new DownloadError('DOWNLOAD_NO_SPACE', `disk full while writing ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  if (typeof err === 'object' && err !== null) localErrors.add(err);
  return err;
}

async function local<T>(path: string, op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (err) {
    throw asLocalError(err, path);
  }
}

/** Size of a regular file, or null when there is none. */
export async function fileSize(path: string): Promise<number | null> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

const HASH_READ_BYTES = 1 << 20;

/** Reads the file through `hash` with one reused buffer (constant memory); returns the bytes fed. */
export async function hashInto(hash: Hash, path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafeSlow(HASH_READ_BYTES);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, bytes);
      if (bytesRead === 0) return bytes;
      hash.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await hashInto(hash, path);
  return hash.digest('hex');
}

/** Makes a completed rename durable: without it a power cut can bring back the old directory entry. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems (vfat on boot partitions, some FUSE) cannot fsync a directory at all.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
  } finally {
    await handle.close();
  }
}

// Received bytes are copied into one of two buffers of this size: one fills while the other is
// written, so the network and the disk work at the same time, and memory stays at two buffers
// whatever the artifact size (socket chunks are never kept alive waiting for the disk).
const WRITE_BATCH_BYTES = 1 << 20;
// Smallest buffer worth having; small artifacts get buffers of their own size (at least this).
const MIN_BATCH_BYTES = 64 * 1024;
// Every this many bytes written, an fdatasync starts in the background (not in the write chain), so
// the page cache is flushed while the transfer goes on and the final fsync has little left to do.
// Without it, a machine with lots of RAM keeps the whole artifact dirty until that final fsync.
const BACKGROUND_SYNC_BYTES = 32 << 20;

/**
 * The `.part` file plus a running sha256 of exactly the bytes it holds, so that a resumed download
 * is verified end to end without reading the file back. Appends are written behind: `received`
 * runs ahead of `bytes` until `flush()`; the hash only ever covers bytes the kernel accepted.
 */
export class PartFile {
  private handle: FileHandle | undefined;
  /** The buffer appends copy into, and the other one (absent while its write is in flight). */
  private filling: Buffer | undefined;
  private spare: Buffer | undefined;
  private fillBytes = 0;
  private inFlight: Promise<void> | undefined;
  private inFlightBytes = 0;
  private writeError: unknown;
  private syncing: Promise<void> | undefined;
  private syncError: unknown;
  private unsyncedBytes = 0;

  private constructor(
    readonly path: string,
    handle: FileHandle,
    private hash: Hash,
    private length: number,
    private readonly batchBytes: number,
  ) {
    this.handle = handle;
  }

  /** Opens (or creates) the part file; content longer than `maxBytes` cannot be a prefix and is dropped. */
  static async open(path: string, maxBytes: number): Promise<PartFile> {
    const existing = await fileSize(path);
    if (existing !== null && existing > maxBytes) await rm(path, { force: true });
    const hash = createHash('sha256');
    const length = existing !== null && existing <= maxBytes ? await hashInto(hash, path) : 0;
    // O_CREAT without O_TRUNC/O_APPEND: keep existing bytes and write at explicit offsets.
    const handle = await local(path, open(path, constants.O_RDWR | constants.O_CREAT, 0o644));
    const batch = Math.min(WRITE_BATCH_BYTES, Math.max(MIN_BATCH_BYTES, maxBytes - length));
    return new PartFile(path, handle, hash, length, batch);
  }

  /** Bytes written and hashed so far: the offset to resume from. */
  get bytes(): number {
    return this.length;
  }

  /** Bytes handed to `append`, written or not yet. */
  get received(): number {
    return this.length + this.inFlightBytes + this.fillBytes;
  }

  digest(): string {
    // copy(): the running hash must stay usable if verification happens before more data arrives.
    return this.hash.copy().digest('hex');
  }

  /**
   * Copies `chunk` into the write buffer and starts writing at once if the disk is idle; while a
   * write is in flight, bytes collect for the next one. So a slow link puts each chunk on disk as it
   * arrives (a crash loses nothing received), a fast one gets big writes. Returns a promise only
   * when the buffers are full: `chunk` must then stay untouched until it settles (the rest of it is
   * copied once the write in flight is done).
   */
  append(chunk: Uint8Array): Promise<void> | undefined {
    if (this.writeError !== undefined) return this.settle();
    const copied = this.copyIn(chunk, 0);
    if (this.inFlight === undefined) this.startWrite();
    if (copied === chunk.length) return undefined;
    return this.appendRest(chunk, copied);
  }

  /** Writes everything appended so far; afterwards `bytes === received`. */
  async flush(): Promise<void> {
    while (this.inFlight !== undefined || this.fillBytes > 0) {
      await this.settle();
      if (this.inFlight === undefined) this.startWrite();
    }
    await this.settle();
  }

  /** Forgets appended bytes that were not written yet (after a failed flush). */
  dropUnwritten(): void {
    this.fillBytes = 0;
  }

  /** Drops anything past the hashed prefix, e.g. the tail of a write interrupted by an earlier error. */
  async trimToHashed(): Promise<void> {
    await local(this.path, this.open().truncate(this.length));
  }

  async reset(): Promise<void> {
    this.dropUnwritten();
    await this.settle().catch(() => undefined);
    this.hash = createHash('sha256');
    this.length = 0;
    await this.trimToHashed();
  }

  async sync(): Promise<void> {
    await this.syncing;
    const err = this.syncError;
    this.syncError = undefined;
    if (err !== undefined) throw asLocalError(err, this.path);
    await local(this.path, this.open().sync());
  }

  async close(): Promise<void> {
    this.dropUnwritten();
    await this.settle().catch(() => undefined);
    await this.syncing;
    const handle = this.handle;
    this.handle = undefined;
    this.filling = undefined;
    this.spare = undefined;
    await handle?.close();
  }

  async remove(): Promise<void> {
    await this.close();
    await rm(this.path, { force: true });
  }

  /** Copies as much of chunk[from..] as fits into the filling buffer; returns the new position. */
  private copyIn(chunk: Uint8Array, from: number): number {
    this.filling ??= this.spare ?? Buffer.allocUnsafeSlow(this.batchBytes);
    if (this.spare === this.filling) this.spare = undefined;
    const n = Math.min(chunk.length - from, this.batchBytes - this.fillBytes);
    this.filling.set(n === chunk.length ? chunk : chunk.subarray(from, from + n), this.fillBytes);
    this.fillBytes += n;
    return from + n;
  }

  private async appendRest(chunk: Uint8Array, from: number): Promise<void> {
    while (from < chunk.length) {
      await this.settle();
      if (this.inFlight === undefined) this.startWrite();
      from = this.copyIn(chunk, from);
    }
    if (this.inFlight === undefined) this.startWrite();
  }

  /** Only while no write is in flight: writes must land in order, at increasing offsets. */
  private startWrite(): void {
    const buffer = this.filling;
    const bytes = this.fillBytes;
    if (buffer === undefined || bytes === 0 || this.inFlight !== undefined) return;
    this.filling = this.spare;
    this.spare = undefined;
    this.fillBytes = 0;
    this.inFlightBytes = bytes;
    // Caught here so a failure never becomes an unhandled rejection; settle() rethrows it.
    this.inFlight = this.writeBatch(buffer, bytes).then(
      () => {
        this.spare = buffer;
        this.inFlight = undefined;
        this.maybeSyncInBackground(bytes);
      },
      (err: unknown) => {
        this.spare = buffer;
        this.inFlightBytes = 0;
        this.writeError = err;
        this.inFlight = undefined;
      },
    );
  }

  private async writeBatch(buffer: Buffer, bytes: number): Promise<void> {
    const handle = this.open();
    let written = 0;
    while (written < bytes) {
      const { bytesWritten } = await handle.write(buffer, written, bytes - written, this.length + written);
      if (bytesWritten === 0) throw new Error(`write to ${this.path} wrote nothing`);
      written += bytesWritten;
    }
    // Hashed after the write, from the same buffer (untouched until this returns): the hash never
    // covers bytes the file does not hold.
    this.hash.update(bytes === buffer.length ? buffer : buffer.subarray(0, bytes));
    // Both in one step: `received` must never count these bytes twice.
    this.length += bytes;
    this.inFlightBytes = 0;
  }

  private maybeSyncInBackground(bytes: number): void {
    this.unsyncedBytes += bytes;
    if (this.unsyncedBytes < BACKGROUND_SYNC_BYTES || this.syncing !== undefined || this.handle === undefined) return;
    this.unsyncedBytes = 0;
    this.syncing = this.handle.datasync().then(
      () => {
        this.syncing = undefined;
      },
      (err: unknown) => {
        // Kept for sync(): the final fsync must not report success over an earlier failure.
        this.syncError ??= err;
        this.syncing = undefined;
      },
    );
  }

  /** Waits for the write in flight; rethrows its failure (tagged as a local error). */
  private async settle(): Promise<void> {
    if (this.inFlight !== undefined) await this.inFlight;
    const err = this.writeError;
    if (err === undefined) return;
    this.writeError = undefined;
    throw asLocalError(err, this.path);
  }

  private open(): FileHandle {
    if (this.handle === undefined) throw new Error(`${this.path} is already closed`);
    return this.handle;
  }
}
