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

/**
 * The `.part` file plus a running sha256 of exactly the bytes it holds, so that a resumed download
 * is verified end to end without reading the file back.
 */
export class PartFile {
  private handle: FileHandle | undefined;

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

  /** Bytes stored and hashed so far: the offset to resume from. */
  get bytes(): number {
    return this.length;
  }

  digest(): string {
    // copy(): the running hash must stay usable if verification happens before more data arrives.
    return this.hash.copy().digest('hex');
  }

  async append(chunk: Buffer): Promise<void> {
    await local(this.path, this.open().write(chunk, 0, chunk.length, this.length));
    this.hash.update(chunk);
    this.length += chunk.length;
  }

  /** Drops anything past the hashed prefix, e.g. the tail of a write interrupted by an earlier error. */
  async trimToHashed(): Promise<void> {
    await local(this.path, this.open().truncate(this.length));
  }

  async reset(): Promise<void> {
    this.hash = createHash('sha256');
    this.length = 0;
    await this.trimToHashed();
  }

  async sync(): Promise<void> {
    await local(this.path, this.open().sync());
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  async remove(): Promise<void> {
    await this.close();
    await rm(this.path, { force: true });
  }

  private open(): FileHandle {
    if (this.handle === undefined) throw new Error(`${this.path} is already closed`);
    return this.handle;
  }
}
