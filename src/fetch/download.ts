import { mkdir, rename, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DownloadError, describeUrl, errorMessage, type DownloadErrorCode } from './errors.js';
import { PartFile, fileSize, fsyncDirectory, isLocalError, sha256File } from './files.js';
import { createProgressReporter, type ProgressReporter } from './progress.js';
import { openResponse, parseDownloadUrl, type TlsOptions } from './request.js';
import type { DownloadResponse, HttpClientChoice } from './response.js';
import { computeBackoffMs } from './retry.js';
import { assertFreeSpace } from './space.js';
import { TokenBucket } from './throttle.js';

export { DownloadError, type DownloadErrorCode, type DownloadErrorOptions } from './errors.js';
export { createProgressReporter, type ProgressCallback, type ProgressReporter } from './progress.js';
export type { TlsOptions } from './request.js';
export type { HttpClientChoice } from './response.js';
export { computeBackoffMs } from './retry.js';
export { assertFreeSpace, availableBytes, type FsSpaceStats } from './space.js';
export { TokenBucket, computeThrottleDelayMs } from './throttle.js';

export interface DownloadRequest {
  /** http: or https: only; scheme policy (e.g. https-only) is the caller's job. */
  url: string;
  /** Final file. Data is staged in `destPath + '.part'` and renamed only after size and sha256 match. */
  destPath: string;
  /** Expected sha256, hex. */
  sha256: string;
  /** Expected byte count. */
  size: number;
  /** Aborting rejects with DOWNLOAD_ABORTED and keeps the .part so a later call resumes. */
  signal?: AbortSignal;
  /** Called at most every ~250ms while receiving, plus once when the file is complete. */
  onProgress?: (received: number, total: number) => void;
  bandwidthLimitBytesPerSec?: number;
  /** Requests to make before giving up on transient failures (default 5). */
  maxAttempts?: number;
  /** Per-attempt idle timeout: how long without response headers or body bytes (default 30000). */
  timeoutMs?: number;
  headers?: Record<string, string>;
  /** When set, redirects may only lead to these hosts (the announcement's URL was vetted by the caller). */
  allowedHosts?: readonly string[] | undefined;
  tls?: TlsOptions;
  /**
   * HTTP client. Default 'fixed-buffer' (constant memory: one read buffer per connection, for
   * http: and https:); 'node-http' is Node's http/https modules, kept for A/B benches and tests.
   */
  httpClient?: HttpClientChoice;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  /**
   * Bytes that were already on disk when the call started and ended up in the final file: the
   * size of a reused .part (0 if it was absent or discarded), or `bytes` if nothing was fetched.
   */
  resumedFrom: number;
  /** HTTP attempts made (redirect hops not counted); 0 when the file was already complete. */
  attempts: number;
}

const DEFAULT_MAX_ATTEMPTS = 5;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;
const SHA256_HEX = /^[0-9a-f]{64}$/;

// Resuming after these would only re-fetch the rest of a body already known to be wrong, or keep
// a disk full.
const DISCARD_PART_CODES = new Set<DownloadErrorCode>([
  'DOWNLOAD_TOO_LARGE',
  'DOWNLOAD_SIZE_MISMATCH',
  'DOWNLOAD_HASH_MISMATCH',
  'DOWNLOAD_NO_SPACE',
]);

/** Per-call state shared by all attempts. */
interface Transfer {
  readonly url: URL;
  readonly size: number;
  readonly sha256: string;
  readonly destPath: string;
  readonly part: PartFile;
  readonly signal: AbortSignal | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly tls: TlsOptions | undefined;
  readonly allowedHosts: readonly string[] | undefined;
  readonly httpClient: HttpClientChoice | undefined;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly bucket: TokenBucket | undefined;
  readonly progress: ProgressReporter;
  resumedFrom: number;
}

/**
 * Downloads `req.url` to `req.destPath`, resuming from a previous `.part`, verifying size and
 * sha256 before the file appears under its final name. Safe to call again after a crash.
 */
export async function downloadArtifact(req: DownloadRequest): Promise<DownloadResult> {
  const url = parseDownloadUrl(req.url);
  const sha256 = normalizeExpectations(req);
  throwIfAborted(req.signal, url, 0, req.size);
  const progress = createProgressReporter(req.onProgress, req.size);

  if (await isAlreadyComplete(req.destPath, req.size, sha256)) {
    progress.finish(req.size);
    return { path: req.destPath, bytes: req.size, resumedFrom: req.size, attempts: 0 };
  }

  await mkdir(dirname(req.destPath), { recursive: true });
  const part = await PartFile.open(`${req.destPath}.part`, req.size);
  const t = newTransfer(req, url, sha256, part, progress);
  try {
    const attempts = await fetchMissingBytes(t);
    await commit(t);
    progress.finish(req.size);
    return { path: req.destPath, bytes: req.size, resumedFrom: t.resumedFrom, attempts };
  } catch (err) {
    if (err instanceof DownloadError && DISCARD_PART_CODES.has(err.code)) await part.remove();
    throw err;
  } finally {
    await part.close();
  }
}

function newTransfer(
  req: DownloadRequest,
  url: URL,
  sha256: string,
  part: PartFile,
  progress: ProgressReporter,
): Transfer {
  const rate = req.bandwidthLimitBytesPerSec;
  return {
    url,
    size: req.size,
    sha256,
    destPath: req.destPath,
    part,
    signal: req.signal,
    headers: req.headers,
    tls: req.tls,
    allowedHosts: req.allowedHosts,
    httpClient: req.httpClient,
    timeoutMs: req.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxAttempts: Math.max(1, Math.floor(req.maxAttempts ?? DEFAULT_MAX_ATTEMPTS)),
    bucket: rate !== undefined && rate > 0 ? new TokenBucket(rate) : undefined,
    progress,
    resumedFrom: part.bytes,
  };
}

/** Returns the expected digest in canonical form; malformed expectations are caller bugs. */
function normalizeExpectations(req: DownloadRequest): string {
  if (!Number.isSafeInteger(req.size) || req.size < 0) {
    throw new TypeError(`download size must be a non-negative integer, got ${req.size}`);
  }
  const sha256 = req.sha256.toLowerCase();
  if (!SHA256_HEX.test(sha256)) {
    throw new TypeError(`download sha256 must be 64 hex characters, got ${JSON.stringify(req.sha256)}`);
  }
  return sha256;
}

async function isAlreadyComplete(path: string, size: number, sha256: string): Promise<boolean> {
  if ((await fileSize(path)) !== size) return false;
  return (await sha256File(path)) === sha256;
}

/** Brings the .part to `size` bytes; returns the number of HTTP attempts it took. */
async function fetchMissingBytes(t: Transfer): Promise<number> {
  if (t.part.bytes === t.size) {
    // A crash between the last write and the rename leaves a complete .part: no network needed.
    if (t.part.digest() === t.sha256) return 0;
    await restartFromZero(t);
  }
  const dir = dirname(t.destPath);
  assertFreeSpace(await statfs(dir), t.size - t.part.bytes, dir);
  return transferWithRetries(t);
}

async function restartFromZero(t: Transfer): Promise<void> {
  await t.part.reset();
  t.resumedFrom = 0;
}

async function transferWithRetries(t: Transfer): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      await transferOnce(t);
      return attempt;
    } catch (err) {
      const failure = classifyFailure(err, t);
      if (!(failure instanceof DownloadError) || !failure.retryable) throw failure;
      if (attempt >= t.maxAttempts) throw gaveUp(failure, attempt);
      await backoff(attempt - 1, t);
    }
  }
}

async function transferOnce(t: Transfer): Promise<void> {
  await t.part.trimToHashed();
  const { res, url } = await openResponse(t.url, {
    headers: requestHeaders(t.headers, t.part.bytes),
    tls: t.tls,
    signal: t.signal,
    timeoutMs: t.timeoutMs,
    maxRedirects: MAX_REDIRECTS,
    allowedHosts: t.allowedHosts,
    httpClient: t.httpClient,
  });
  try {
    await acceptResponse(res, url, t);
    await receiveBody(res, url, t);
  } finally {
    res.destroy();
  }
}

function requestHeaders(custom: Record<string, string> | undefined, offset: number): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': 'ota-agent' };
  for (const [name, value] of Object.entries(custom ?? {})) headers[name.toLowerCase()] = value;
  // We hash the bytes as they arrive; a compressed transfer encoding would hash the wrong thing.
  headers['accept-encoding'] = 'identity';
  delete headers.range;
  if (offset > 0) headers.range = `bytes=${offset}-`;
  return headers;
}

/** Validates status and announced lengths, and lines the .part up with where the body starts. */
async function acceptResponse(res: DownloadResponse, url: URL, t: Transfer): Promise<void> {
  const status = res.status;
  if (status === 200) return acceptFullBody(res, url, t);
  if (status === 206) return acceptPartialBody(res, url, t);
  if (status === 416 && t.part.bytes > 0) {
    const offset = t.part.bytes;
    // The .part no longer matches what the server has; keeping it would fail the same way forever.
    await restartFromZero(t);
    throw new DownloadError(
      'DOWNLOAD_HTTP_STATUS',
      `${describeUrl(url)} rejected resuming at byte ${offset} (HTTP 416); restarting from the beginning`,
      { status, retryable: true },
    );
  }
  throw httpStatusError(status, res.statusMessage, url);
}

async function acceptFullBody(res: DownloadResponse, url: URL, t: Transfer): Promise<void> {
  // Server ignored our Range header (or we sent none): the body starts at byte 0.
  if (t.part.bytes > 0) await restartFromZero(t);
  const length = contentLength(res);
  if (length !== undefined) checkAnnouncedSize(length, t.size, url);
}

async function acceptPartialBody(res: DownloadResponse, url: URL, t: Transfer): Promise<void> {
  const range = parseContentRange(res.header('content-range'));
  if (range === undefined || range.start !== t.part.bytes) {
    const requested = t.part.bytes;
    await restartFromZero(t);
    throw new DownloadError(
      'DOWNLOAD_NETWORK',
      `${describeUrl(url)} answered a resume from byte ${requested} with ` +
        `${range === undefined ? 'an unusable Content-Range' : `a range starting at byte ${range.start}`}; ` +
        'restarting from the beginning',
    );
  }
  if (range.total !== undefined) checkAnnouncedSize(range.total, t.size, url);
  const length = contentLength(res);
  if (length !== undefined) checkAnnouncedSize(range.start + length, t.size, url);
}

function checkAnnouncedSize(announced: number, expected: number, url: URL): void {
  if (announced > expected) {
    throw new DownloadError(
      'DOWNLOAD_TOO_LARGE',
      `${describeUrl(url)} announced ${announced} bytes but the artifact should be ${expected} bytes`,
    );
  }
  if (announced < expected) {
    throw new DownloadError(
      'DOWNLOAD_SIZE_MISMATCH',
      `size mismatch for ${describeUrl(url)}: expected ${expected} bytes, server announced ${announced}`,
    );
  }
}

function httpStatusError(status: number, statusMessage: string | undefined, url: URL): DownloadError {
  const reason = statusMessage ? ` ${statusMessage}` : '';
  return new DownloadError('DOWNLOAD_HTTP_STATUS', `HTTP ${status}${reason} from ${describeUrl(url)}`, {
    status,
    retryable: isRetryableStatus(status),
  });
}

function isRetryableStatus(status: number): boolean {
  // 408/429 are the server asking us to come back later, not a verdict on the request.
  return status >= 500 || status === 408 || status === 429;
}

function contentLength(res: DownloadResponse): number | undefined {
  const raw = res.header('content-length');
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

function parseContentRange(raw: string | undefined): { start: number; total?: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(raw?.trim() ?? '');
  if (match === null) return undefined;
  const start = Number(match[1]);
  return match[3] === '*' ? { start } : { start, total: Number(match[3]) };
}

/** Streams the body into the .part, enforcing the size limit, bandwidth limit and idle timeout. */
async function receiveBody(res: DownloadResponse, url: URL, t: Transfer): Promise<void> {
  const stopAbortWatch = onAbort(t.signal, () => res.destroy(abortedError(t)));
  try {
    await res.readBody((chunk) => storeChunk(chunk, url, t), {
      idleMs: t.timeoutMs,
      idleError: () =>
        new DownloadError(
          'DOWNLOAD_NETWORK',
          `no data from ${describeUrl(url)} for ${t.timeoutMs / 1000}s at byte ${t.part.received} of ${t.size}`,
        ),
    });
  } catch (err) {
    // Bytes received before the failure are a valid prefix: keep them so the retry resumes after them.
    await flushAfterFailure(t);
    throw err;
  } finally {
    stopAbortWatch();
  }
  await t.part.flush();
  if (t.part.bytes !== t.size) {
    throw new DownloadError(
      'DOWNLOAD_SIZE_MISMATCH',
      `size mismatch for ${describeUrl(url)}: expected ${t.size} bytes, the response ended after ${t.part.bytes}`,
    );
  }
}

/** A failed write wins over the network error that ended the body: a full disk is the real story. */
async function flushAfterFailure(t: Transfer): Promise<void> {
  try {
    await t.part.flush();
  } catch (err) {
    t.part.dropUnwritten();
    throw err;
  }
}

/**
 * The body sink: `chunk` is copied into the .part's write buffer before this returns (the
 * fixed-buffer client reuses its memory). A promise means "read no more until it settles": the
 * write buffers are full, or the bandwidth limit wants a pause.
 */
function storeChunk(chunk: Buffer, url: URL, t: Transfer): Promise<void> | undefined {
  if (t.part.received + chunk.length > t.size) {
    throw new DownloadError(
      'DOWNLOAD_TOO_LARGE',
      `${describeUrl(url)} sent more than the expected ${t.size} bytes; stopped reading`,
    );
  }
  const stored = t.part.append(chunk);
  t.progress.update(t.part.received);
  const delay = t.bucket?.take(chunk.length) ?? 0;
  if (delay <= 0) return stored;
  const pause = sleep(delay, undefined, { signal: t.signal });
  return stored === undefined ? pause : Promise.all([stored, pause]).then(() => undefined);
}

function onAbort(signal: AbortSignal | undefined, handler: () => void): () => void {
  if (signal === undefined) return () => undefined;
  signal.addEventListener('abort', handler, { once: true });
  return () => signal.removeEventListener('abort', handler);
}

/** Maps whatever an attempt threw to a DownloadError, except local I/O errors which pass through. */
function classifyFailure(err: unknown, t: Transfer): unknown {
  if (err instanceof DownloadError) return err;
  if (t.signal?.aborted) return abortedError(t, err);
  if (isLocalError(err)) return err;
  return new DownloadError(
    'DOWNLOAD_NETWORK',
    `network error downloading ${describeUrl(t.url)} at byte ${t.part.bytes} of ${t.size}: ${networkDetail(err)}`,
    { cause: err },
  );
}

function networkDetail(err: unknown): string {
  // Node reports a body cut short by the peer as a bare "aborted", which reads like our own abort.
  if (err instanceof Error && err.message === 'aborted') return 'connection closed before the response was complete';
  return errorMessage(err);
}

function abortedError(t: Transfer, cause?: unknown): DownloadError {
  return new DownloadError(
    'DOWNLOAD_ABORTED',
    `download of ${describeUrl(t.url)} aborted at byte ${t.part.received} of ${t.size}`,
    { cause },
  );
}

function throwIfAborted(signal: AbortSignal | undefined, url: URL, received: number, size: number): void {
  if (!signal?.aborted) return;
  throw new DownloadError(
    'DOWNLOAD_ABORTED',
    `download of ${describeUrl(url)} aborted at byte ${received} of ${size}`,
  );
}

function gaveUp(failure: DownloadError, attempts: number): DownloadError {
  if (attempts <= 1) return failure;
  return new DownloadError(failure.code, `${failure.message} (gave up after ${attempts} attempts)`, {
    retryable: failure.retryable,
    ...(failure.status === undefined ? {} : { status: failure.status }),
    cause: failure,
  });
}

async function backoff(retryIndex: number, t: Transfer): Promise<void> {
  try {
    await sleep(computeBackoffMs(retryIndex), undefined, { signal: t.signal });
  } catch (err) {
    throw abortedError(t, err);
  }
}

/** Verifies the .part and moves it into place durably. */
async function commit(t: Transfer): Promise<void> {
  if (t.part.bytes !== t.size) {
    throw new DownloadError(
      'DOWNLOAD_SIZE_MISMATCH',
      `size mismatch for ${describeUrl(t.url)}: expected ${t.size} bytes, got ${t.part.bytes}`,
    );
  }
  const actual = t.part.digest();
  if (actual !== t.sha256) {
    throw new DownloadError(
      'DOWNLOAD_HASH_MISMATCH',
      `sha256 mismatch for ${describeUrl(t.url)}: expected ${t.sha256} got ${actual}`,
    );
  }
  // Data must be on disk before the name points at it, or a power cut can leave a verified-looking
  // file full of zeros.
  await t.part.sync();
  await t.part.close();
  await rename(t.part.path, t.destPath);
  await fsyncDirectory(dirname(t.destPath));
}
