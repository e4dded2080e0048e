// Artifacts from a local file (USB stick, offline install): copied into the download directory and
// verified exactly like a download, so the install step never reads from removable media.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { DownloadError } from './errors.js';
import { fsyncDirectory, sha256File } from './files.js';

export async function copyVerified(req: { srcPath: string; destPath: string; sha256: string; size: number; signal?: AbortSignal; onProgress?: (got: number, total: number) => void }): Promise<void> {
  if ((await sha256File(req.destPath).catch(() => null)) === req.sha256) return;
  await mkdir(dirname(req.destPath), { recursive: true, mode: 0o700 });
  const part = `${req.destPath}.part`;
  const hash = createHash('sha256');
  let got = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      got += chunk.length;
      if (got > req.size) {
        cb(new DownloadError('DOWNLOAD_TOO_LARGE', `${req.srcPath} is larger than the expected ${req.size} bytes`));
        return;
      }
      hash.update(chunk);
      req.onProgress?.(got, req.size);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(req.srcPath), meter, createWriteStream(part, { mode: 0o600 }), ...(req.signal ? [{ signal: req.signal }] : []));
    if (got !== req.size) throw new DownloadError('DOWNLOAD_SIZE_MISMATCH', `size mismatch for ${req.srcPath}: expected ${req.size} bytes, got ${got}`);
    const digest = hash.digest('hex');
    if (digest !== req.sha256) throw new DownloadError('DOWNLOAD_HASH_MISMATCH', `sha256 mismatch for ${req.srcPath}: expected ${req.sha256} got ${digest}`);
    const fh = await open(part, 'r');
    await fh.sync();
    await fh.close();
    await rename(part, req.destPath);
    await fsyncDirectory(dirname(req.destPath));
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  }
}
