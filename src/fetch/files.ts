import { createHash, type Hash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
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

/** Streams the file through `hash` (constant memory) and returns how many bytes it fed. */
export async function hashInto(hash: Hash, path: string): Promise<number> {
  let bytes = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return bytes;
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

// Received chunks are collected up to this many bytes and written with one writev while the next
// batch arrives, so the network and the disk work at the same time instead of taking turns.
const WRITE_BATCH_BYTES = 1 << 20;

/**
 * The `.part` file plus a running sha256 of exactly the bytes it holds, so that a resumed download
 * is verified end to end without reading the file back. Appends are written behind: `received`
 * runs ahead of `bytes` until `flush()`; the hash only ever covers bytes the kernel accepted.
 */
export class PartFile {
  private handle: FileHandle | undefined;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private inFlight: Promise<void> | undefined;
  private inFlightBytes = 0;
  private writeError: unknown;

  private constructor(
    readonly path: string,
    handle: FileHandle,
    private hash: Hash,
    private length: number,
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
    return new PartFile(path, handle, hash, length);
  }

  /** Bytes written and hashed so far: the offset to resume from. */
  get bytes(): number {
    return this.length;
  }

  /** Bytes handed to `append`, written or not yet. */
  get received(): number {
    return this.length + this.inFlightBytes + this.batchBytes;
  }

  digest(): string {
    // copy(): the running hash must stay usable if verification happens before more data arrives.
    return this.hash.copy().digest('hex');
  }

  /**
   * Queues `chunk` and starts writing it at once if the disk is idle; while a write is in flight,
   * chunks collect into the next batch (one writev), and only a full batch waits. So a slow link
   * puts each chunk on disk as it arrives (a crash loses nothing written), a fast one gets big writes.
   */
  async append(chunk: Buffer): Promise<void> {
    if (this.writeError !== undefined) await this.settle();
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    if (this.inFlight === undefined) {
      this.startWrite();
      return;
    }
    if (this.batchBytes >= WRITE_BATCH_BYTES) {
      await this.settle();
      if (this.batchBytes > 0) this.startWrite();
    }
  }

  /** Writes everything appended so far; afterwards `bytes === received`. */
  async flush(): Promise<void> {
    await this.settle();
    if (this.batchBytes === 0) return;
    this.startWrite();
    await this.settle();
  }

  /** Forgets appended bytes that were not written yet (after a failed flush). */
  dropUnwritten(): void {
    this.batch = [];
    this.batchBytes = 0;
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
    await local(this.path, this.open().sync());
  }

  async close(): Promise<void> {
    this.dropUnwritten();
    await this.settle().catch(() => undefined);
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  async remove(): Promise<void> {
    await this.close();
    await rm(this.path, { force: true });
  }

  /** Only while no write is in flight: writes must land in order, at increasing offsets. */
  private startWrite(): void {
    const chunks = this.batch;
    const bytes = this.batchBytes;
    this.dropUnwritten();
    this.inFlightBytes = bytes;
    // Caught here so a failure never becomes an unhandled rejection; settle() rethrows it.
    this.inFlight = this.writeBatch(chunks, bytes).then(
      () => {
        this.inFlight = undefined;
      },
      (err: unknown) => {
        this.inFlightBytes = 0;
        this.writeError = err;
        this.inFlight = undefined;
      },
    );
  }

  private async writeBatch(chunks: Buffer[], bytes: number): Promise<void> {
    const handle = this.open();
    let written = 0;
    while (written < bytes) {
      const rest = written === 0 ? chunks : remainderOf(chunks, written);
      const { bytesWritten } = await handle.writev(rest, this.length + written);
      if (bytesWritten === 0) throw new Error(`writev to ${this.path} wrote nothing`);
      written += bytesWritten;
    }
    for (const chunk of chunks) this.hash.update(chunk);
    // Both in one step: `received` must never count these bytes twice.
    this.length += bytes;
    this.inFlightBytes = 0;
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

/** The chunks after the first `skip` bytes (a short writev is rare but legal). */
function remainderOf(chunks: Buffer[], skip: number): Buffer[] {
  const rest: Buffer[] = [];
  let offset = 0;
  for (const chunk of chunks) {
    const end = offset + chunk.length;
    if (end > skip) rest.push(offset >= skip ? chunk : chunk.subarray(skip - offset));
    offset = end;
  }
  return rest;
}
