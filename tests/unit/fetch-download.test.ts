import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DownloadError,
  TokenBucket,
  assertFreeSpace,
  availableBytes,
  computeBackoffMs,
  computeThrottleDelayMs,
  createProgressReporter,
  downloadArtifact,
  type DownloadErrorCode,
  type DownloadRequest,
  type HttpClientChoice,
} from '../../src/fetch/index.js';
import { PartFile } from '../../src/fetch/files.js';

const ARTIFACT = randomBytes(300_000);
const ARTIFACT_SHA = sha256(ARTIFACT);

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

interface SeenRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, index: number) => void;

interface TestServer {
  url(pathname?: string): string;
  requests: SeenRequest[];
}

const servers: http.Server[] = [];
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-fetch-'));
});

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
  fs.rmSync(dir, { recursive: true, force: true });
});

async function startServer(handler: Handler): Promise<TestServer> {
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ path: req.url ?? '', headers: req.headers });
    handler(req, res, requests.length - 1);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: (pathname = '/artifact.bin') => `http://127.0.0.1:${port}${pathname}`, requests };
}

/** Serves `data` like a well-behaved static file server, honouring `Range: bytes=N-`. */
function sendArtifact(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer = ARTIFACT): void {
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (match) {
    const start = Number(match[1]);
    res.writeHead(206, {
      'content-length': data.length - start,
      'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
    });
    res.end(data.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': data.length });
  res.end(data);
}

/** Starts a full-length response, sends `count` bytes from the requested offset, then closes the TCP connection mid-body. */
function sendThenDrop(req: http.IncomingMessage, res: http.ServerResponse, count: number): void {
  const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
  const headers: http.OutgoingHttpHeaders = { 'content-length': ARTIFACT.length - start };
  if (start > 0) headers['content-range'] = `bytes ${start}-${ARTIFACT.length - 1}/${ARTIFACT.length}`;
  res.writeHead(start > 0 ? 206 : 200, headers);
  // end(), not destroy(): a FIN after the flushed bytes, so the client really holds `count` bytes
  // (a RST could discard some still unread, making the resume offset nondeterministic).
  res.write(ARTIFACT.subarray(start, start + count), () => res.socket?.end());
}

/** Sends `count` bytes of a full-length response and then goes silent without closing. */
function sendThenStall(res: http.ServerResponse, count: number): void {
  res.writeHead(200, { 'content-length': ARTIFACT.length });
  res.write(ARTIFACT.subarray(0, count));
}

// Every downloadArtifact test runs with both clients for http: URLs: the fixed-buffer one (the
// default) and Node's http module (what https uses).
let httpClient: HttpClientChoice = 'fixed-buffer';

function request(server: TestServer, extra: Partial<DownloadRequest> = {}): DownloadRequest {
  return {
    httpClient,
    url: server.url(),
    destPath: path.join(dir, 'artifact.bin'),
    sha256: ARTIFACT_SHA,
    size: ARTIFACT.length,
    ...extra,
  };
}

const destPath = (): string => path.join(dir, 'artifact.bin');
const partPath = (): string => `${destPath()}.part`;

async function expectDownloadError(promise: Promise<unknown>, code: DownloadErrorCode): Promise<DownloadError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DownloadError);
  const downloadError = err as DownloadError;
  expect(downloadError.code, downloadError.message).toBe(code);
  return downloadError;
}

function expectArtifactAtDest(): void {
  expect(sha256(fs.readFileSync(destPath()))).toBe(ARTIFACT_SHA);
  expect(fs.existsSync(partPath())).toBe(false);
}

describe.each(['fixed-buffer', 'node-http'] as const)('downloadArtifact (%s client)', (client) => {
  beforeEach(() => {
    httpClient = client;
  });

  it('downloads, verifies and reports throttled progress ending with a final call', async () => {
    const server = await startServer((req, res) => sendArtifact(req, res));
    const calls: Array<[number, number]> = [];

    const result = await downloadArtifact(request(server, { onProgress: (r, t) => calls.push([r, t]) }));

    expect(result).toEqual({ path: destPath(), bytes: ARTIFACT.length, resumedFrom: 0, attempts: 1 });
    expectArtifactAtDest();
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.headers.range).toBeUndefined();
    expect(server.requests[0]?.headers['accept-encoding']).toBe('identity');
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.at(-1)).toEqual([ARTIFACT.length, ARTIFACT.length]);
    for (let i = 1; i < calls.length; i++) expect(calls[i]![0]).toBeGreaterThan(calls[i - 1]![0]);
    expect(calls.every(([, total]) => total === ARTIFACT.length)).toBe(true);
  });

  it('returns immediately without touching the network when the file is already complete', async () => {
    const server = await startServer((req, res) => sendArtifact(req, res));
    fs.writeFileSync(destPath(), ARTIFACT);
    const calls: Array<[number, number]> = [];

    const result = await downloadArtifact(request(server, { onProgress: (r, t) => calls.push([r, t]) }));

    expect(result).toEqual({ path: destPath(), bytes: ARTIFACT.length, resumedFrom: ARTIFACT.length, attempts: 0 });
    expect(server.requests).toHaveLength(0);
    expect(calls).toEqual([[ARTIFACT.length, ARTIFACT.length]]);
  });

  it('replaces an existing destination file whose content is wrong', async () => {
    const server = await startServer((req, res) => sendArtifact(req, res));
    fs.writeFileSync(destPath(), randomBytes(ARTIFACT.length));

    const result = await downloadArtifact(request(server));

    expect(result.attempts).toBe(1);
    expectArtifactAtDest();
  });

  it('resumes with a Range request after the connection drops mid-transfer', async () => {
    const dropAfter = 100_003;
    const server = await startServer((req, res, index) =>
      index === 0 ? sendThenDrop(req, res, dropAfter) : sendArtifact(req, res),
    );

    const result = await downloadArtifact(request(server));

    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]?.headers.range).toBeUndefined();
    // Resumed from what was stored: under load Node may drop body bytes it had buffered but not yet
    // handed over when the connection closed, so the offset is at most what the server sent.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.requests[1]?.headers.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(dropAfter);
    expect(result).toMatchObject({ attempts: 2, resumedFrom: 0, bytes: ARTIFACT.length });
    expectArtifactAtDest();
  });

  it('treats a stalled response as a network error and resumes after the idle timeout', async () => {
    const stallAfter = 70_000;
    const server = await startServer((req, res, index) =>
      index === 0 ? sendThenStall(res, stallAfter) : sendArtifact(req, res),
    );

    const result = await downloadArtifact(request(server, { timeoutMs: 300 }));

    const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.requests[1]?.headers.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(stallAfter);
    expect(result.attempts).toBe(2);
    expectArtifactAtDest();
  });

  it('gives up after maxAttempts network failures but keeps the verified prefix for a later resume', async () => {
    const chunk = 50_000;
    const server = await startServer((req, res) => sendThenDrop(req, res, chunk));

    const err = await expectDownloadError(downloadArtifact(request(server, { maxAttempts: 2 })), 'DOWNLOAD_NETWORK');

    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/connection closed before the response was complete/);
    expect(err.message).toMatch(/gave up after 2 attempts/);
    expect(server.requests.map((r) => r.headers.range)).toEqual([undefined, `bytes=${chunk}-`]);
    expect(fs.readFileSync(partPath())).toEqual(ARTIFACT.subarray(0, 2 * chunk));
    expect(fs.existsSync(destPath())).toBe(false);
  });

  it('writes a multi-MiB body in batches and, after a drop, keeps every byte received before it', async () => {
    // Larger than two 1 MiB write batches, so writes are in flight while the body still arrives.
    const big = randomBytes(3 * 1024 * 1024 + 12_345);
    const dropAfter = 2 * 1024 * 1024 + 777;
    const server = await startServer((req, res, index) => {
      if (index > 0) return sendArtifact(req, res, big);
      res.writeHead(200, { 'content-length': big.length });
      res.write(big.subarray(0, dropAfter), () => res.socket?.end());
    });

    const result = await downloadArtifact({ httpClient, url: server.url(), destPath: destPath(), sha256: sha256(big), size: big.length });

    // Bytes still in the unwritten batch when the connection closed are written, not dropped: the
    // resume starts past the last full batch (Node may lose only what it never handed over).
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.requests[1]?.headers.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(2 * 1024 * 1024);
    expect(resumedAt).toBeLessThanOrEqual(dropAfter);
    expect(result).toMatchObject({ attempts: 2, bytes: big.length });
    expect(fs.readFileSync(destPath()).equals(big)).toBe(true);
  });

  it('fails with DOWNLOAD_NO_SPACE when the disk fills during the transfer, and removes the .part', async () => {
    // A real full filesystem: a 4 MiB tmpfs, filled by the server after the free-space check passed.
    const small = path.join(dir, 'small');
    fs.mkdirSync(small);
    const { execFileSync } = await import('node:child_process');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
    try {
      await fillsTheDisk(small);
    } finally {
      execFileSync('umount', ['-l', small]);
    }
  });

  async function fillsTheDisk(small: string): Promise<void> {
    const big = randomBytes(3 * 1024 * 1024);
    const server = await startServer((req, res) => {
      fs.writeFileSync(path.join(small, 'filler'), Buffer.alloc(2 * 1024 * 1024));
      sendArtifact(req, res, big);
    });
    const dest = path.join(small, 'artifact.bin');

    const err = await expectDownloadError(
      downloadArtifact({ httpClient, url: server.url(), destPath: dest, sha256: sha256(big), size: big.length }),
      'DOWNLOAD_NO_SPACE',
    );

    expect(err.message).toMatch(/disk full while writing .*artifact\.bin\.part/);
    expect(fs.readdirSync(small).sort()).toEqual(['filler']);
  }

  it('resumes from a .part left by an earlier run', async () => {
    const have = 120_000;
    fs.writeFileSync(partPath(), ARTIFACT.subarray(0, have));
    const server = await startServer((req, res) => sendArtifact(req, res));

    const result = await downloadArtifact(request(server));

    expect(server.requests[0]?.headers.range).toBe(`bytes=${have}-`);
    expect(result).toMatchObject({ attempts: 1, resumedFrom: have });
    expectArtifactAtDest();
  });

  it('starts over when the server ignores Range and answers 200', async () => {
    // Garbage prefix: if it were kept, the final hash could not match.
    fs.writeFileSync(partPath(), randomBytes(50_000));
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': ARTIFACT.length });
      res.end(ARTIFACT);
    });

    const result = await downloadArtifact(request(server));

    expect(server.requests[0]?.headers.range).toBe('bytes=50000-');
    expect(result).toMatchObject({ attempts: 1, resumedFrom: 0 });
    expectArtifactAtDest();
  });

  it('discards a .part that is larger than the expected size', async () => {
    fs.writeFileSync(partPath(), randomBytes(ARTIFACT.length + 10));
    const server = await startServer((req, res) => sendArtifact(req, res));

    const result = await downloadArtifact(request(server));

    expect(server.requests[0]?.headers.range).toBeUndefined();
    expect(result.resumedFrom).toBe(0);
    expectArtifactAtDest();
  });

  it('commits a complete, valid .part without any request', async () => {
    fs.writeFileSync(partPath(), ARTIFACT);
    const server = await startServer((req, res) => sendArtifact(req, res));

    const result = await downloadArtifact(request(server));

    expect(server.requests).toHaveLength(0);
    expect(result).toMatchObject({ attempts: 0, resumedFrom: ARTIFACT.length });
    expectArtifactAtDest();
  });

  it('rejects a body with the wrong sha256 and removes the .part', async () => {
    const impostor = randomBytes(ARTIFACT.length);
    const server = await startServer((req, res) => sendArtifact(req, res, impostor));

    const err = await expectDownloadError(downloadArtifact(request(server)), 'DOWNLOAD_HASH_MISMATCH');

    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`expected ${ARTIFACT_SHA} got ${sha256(impostor)}`);
    expect(fs.existsSync(partPath())).toBe(false);
    expect(fs.existsSync(destPath())).toBe(false);
    expect(server.requests).toHaveLength(1);
  });

  it('rejects a short body announced by Content-Length and removes the .part', async () => {
    fs.writeFileSync(partPath(), ARTIFACT.subarray(0, 1000));
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': 5000 });
      res.end(ARTIFACT.subarray(0, 5000));
    });

    const err = await expectDownloadError(downloadArtifact(request(server)), 'DOWNLOAD_SIZE_MISMATCH');

    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`expected ${ARTIFACT.length} bytes`);
    expect(err.message).toContain('5000');
    expect(fs.existsSync(partPath())).toBe(false);
    expect(server.requests).toHaveLength(1);
  });

  it('rejects a chunked body that ends early and removes the .part', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200);
      res.end(ARTIFACT.subarray(0, 12_345));
    });

    const err = await expectDownloadError(downloadArtifact(request(server)), 'DOWNLOAD_SIZE_MISMATCH');

    expect(err.message).toContain('ended after 12345');
    expect(fs.existsSync(partPath())).toBe(false);
    expect(fs.existsSync(destPath())).toBe(false);
  });

  it('rejects an announced body larger than expected before reading it', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': ARTIFACT.length + 1 });
      res.end(Buffer.concat([ARTIFACT, Buffer.from('x')]));
    });

    const err = await expectDownloadError(downloadArtifact(request(server)), 'DOWNLOAD_TOO_LARGE');

    expect(err.retryable).toBe(false);
    expect(fs.existsSync(partPath())).toBe(false);
  });

  it('stops reading a chunked body as soon as it exceeds the expected size', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200);
      res.end(Buffer.concat([ARTIFACT, randomBytes(200_000)]));
    });

    const err = await expectDownloadError(downloadArtifact(request(server)), 'DOWNLOAD_TOO_LARGE');

    expect(err.message).toContain(`more than the expected ${ARTIFACT.length} bytes`);
    expect(fs.existsSync(partPath())).toBe(false);
    expect(fs.existsSync(destPath())).toBe(false);
  });

  it('fails a 404 without retrying', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(404);
      res.end('nope');
    });

    const err = await expectDownloadError(downloadArtifact(request(server)), 'DOWNLOAD_HTTP_STATUS');

    expect(err.retryable).toBe(false);
    expect(err.status).toBe(404);
    expect(err.message).toContain('HTTP 404');
    expect(server.requests).toHaveLength(1);
  });

  it('retries 5xx responses with backoff and then succeeds', async () => {
    const server = await startServer((req, res, index) => {
      if (index < 2) {
        res.writeHead(500);
        res.end('busy');
        return;
      }
      sendArtifact(req, res);
    });

    const result = await downloadArtifact(request(server));

    expect(server.requests).toHaveLength(3);
    expect(result.attempts).toBe(3);
    expectArtifactAtDest();
  });

  it('reports a persistent 5xx as retryable after exhausting maxAttempts', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(503);
      res.end();
    });

    const err = await expectDownloadError(downloadArtifact(request(server, { maxAttempts: 2 })), 'DOWNLOAD_HTTP_STATUS');

    expect(err.retryable).toBe(true);
    expect(err.status).toBe(503);
    expect(err.message).toMatch(/HTTP 503 .*gave up after 2 attempts/);
    expect(server.requests).toHaveLength(2);
  });

  it('retries 429 Too Many Requests, since it asks the client to come back later', async () => {
    const server = await startServer((req, res, index) => {
      if (index === 0) {
        res.writeHead(429);
        res.end();
        return;
      }
      sendArtifact(req, res);
    });

    const result = await downloadArtifact(request(server));

    expect(result.attempts).toBe(2);
    expectArtifactAtDest();
  });

  it('checks free space before any request and drops the .part when the artifact cannot fit', async () => {
    fs.writeFileSync(partPath(), ARTIFACT.subarray(0, 1000));
    const server = await startServer((req, res) => sendArtifact(req, res));
    const petabytes = 2 ** 52;

    const err = await expectDownloadError(downloadArtifact(request(server, { size: petabytes })), 'DOWNLOAD_NO_SPACE');

    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`${petabytes - 1000} bytes`);
    expect(server.requests).toHaveLength(0);
    expect(fs.existsSync(partPath())).toBe(false);
  });

  it('aborts on signal, keeps the .part, and a later call resumes from it', async () => {
    const stallAfter = 90_000;
    const server = await startServer((req, res, index) =>
      index === 0 ? sendThenStall(res, stallAfter) : sendArtifact(req, res),
    );
    const controller = new AbortController();

    const err = await expectDownloadError(
      downloadArtifact(request(server, { signal: controller.signal, onProgress: () => controller.abort() })),
      'DOWNLOAD_ABORTED',
    );

    expect(err.retryable).toBe(false);
    const kept = fs.readFileSync(partPath());
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThanOrEqual(stallAfter);
    expect(kept).toEqual(ARTIFACT.subarray(0, kept.length));

    const result = await downloadArtifact(request(server));

    expect(server.requests[1]?.headers.range).toBe(`bytes=${kept.length}-`);
    expect(result).toMatchObject({ resumedFrom: kept.length, attempts: 1 });
    expectArtifactAtDest();
  });

  it('does not start when the signal is already aborted', async () => {
    const server = await startServer((req, res) => sendArtifact(req, res));

    await expectDownloadError(downloadArtifact(request(server, { signal: AbortSignal.abort() })), 'DOWNLOAD_ABORTED');

    expect(server.requests).toHaveLength(0);
  });

  it('downloads correctly with a bandwidth limit', async () => {
    const server = await startServer((req, res) => sendArtifact(req, res));

    await downloadArtifact(request(server, { bandwidthLimitBytesPerSec: 4 * 1024 * 1024 }));

    expectArtifactAtDest();
  });

  it('follows a relative redirect', async () => {
    const server = await startServer((req, res) => {
      if (req.url === '/old') {
        res.writeHead(302, { location: '/artifact.bin' });
        res.end();
        return;
      }
      sendArtifact(req, res);
    });

    const result = await downloadArtifact(request(server, { url: server.url('/old') }));

    expect(server.requests.map((r) => r.path)).toEqual(['/old', '/artifact.bin']);
    expect(result.attempts).toBe(1);
    expectArtifactAtDest();
  });

  it('with a host allow-list, refuses a redirect to a host outside it, fetching nothing from there', async () => {
    const target = await startServer((req, res) => sendArtifact(req, res));
    const origin = await startServer((_req, res) => {
      // 127.0.0.1 is allowed; "localhost" (the same machine under another name) is not.
      res.writeHead(302, { location: target.url().replace('127.0.0.1', 'localhost') });
      res.end();
    });

    const err = await expectDownloadError(downloadArtifact(request(origin, { allowedHosts: ['127.0.0.1'] })), 'DOWNLOAD_BAD_URL');

    expect(err.message).toContain('refusing redirect to host "localhost"');
    expect(target.requests).toHaveLength(0);
    expect(fs.existsSync(path.join(dir, 'artifact.bin'))).toBe(false);
  });

  describe('redirect chains', () => {
    // /hop/N redirects to /hop/N-1; /hop/0 serves the artifact.
    const chain: Handler = (req, res) => {
      const hop = Number(/^\/hop\/(\d+)$/.exec(req.url ?? '')?.[1] ?? -1);
      if (hop > 0) {
        res.writeHead(307, { location: `/hop/${hop - 1}` });
        res.end();
        return;
      }
      sendArtifact(req, res);
    };

    it('follows up to 5 redirects', async () => {
      const server = await startServer(chain);

      await downloadArtifact(request(server, { url: server.url('/hop/5') }));

      expect(server.requests).toHaveLength(6);
      expectArtifactAtDest();
    });

    it('refuses a sixth redirect', async () => {
      const server = await startServer(chain);

      const err = await expectDownloadError(
        downloadArtifact(request(server, { url: server.url('/hop/6') })),
        'DOWNLOAD_HTTP_STATUS',
      );

      expect(err.message).toContain('too many redirects');
      expect(err.retryable).toBe(false);
      expect(server.requests.map((r) => r.path)).not.toContain('/hop/0');
    });
  });

  it('does not forward credentials across a cross-origin redirect', async () => {
    const cdn = await startServer((req, res) => sendArtifact(req, res));
    const origin = await startServer((_req, res) => {
      res.writeHead(301, { location: cdn.url() });
      res.end();
    });

    await downloadArtifact(
      request(origin, { headers: { Authorization: 'Bearer device-token', 'X-Device-Id': 'dev-1' } }),
    );

    expect(origin.requests[0]?.headers.authorization).toBe('Bearer device-token');
    expect(cdn.requests[0]?.headers.authorization).toBeUndefined();
    expect(cdn.requests[0]?.headers['x-device-id']).toBe('dev-1');
    expectArtifactAtDest();
  });

  it('rejects non-http schemes and unparsable URLs', async () => {
    const base = { destPath: destPath(), sha256: ARTIFACT_SHA, size: ARTIFACT.length };

    const ftp = await expectDownloadError(downloadArtifact({ ...base, url: 'ftp://example.com/a.bin' }), 'DOWNLOAD_BAD_URL');
    await expectDownloadError(downloadArtifact({ ...base, url: 'not a url' }), 'DOWNLOAD_BAD_URL');
    await expectDownloadError(downloadArtifact({ ...base, url: 'file:///etc/passwd' }), 'DOWNLOAD_BAD_URL');

    expect(ftp.message).toContain('"ftp:"');
    expect(ftp.retryable).toBe(false);
  });

  it('keeps pre-signed query strings out of error messages', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(403);
      res.end();
    });

    const err = await expectDownloadError(
      downloadArtifact(request(server, { url: `${server.url()}?X-Amz-Signature=secret` })),
      'DOWNLOAD_HTTP_STATUS',
    );

    expect(err.message).toContain('/artifact.bin');
    expect(err.message).not.toContain('secret');
  });

  it('rejects a malformed expected digest as a caller bug', async () => {
    const server = await startServer((req, res) => sendArtifact(req, res));

    await expect(downloadArtifact(request(server, { sha256: 'abc' }))).rejects.toThrow(TypeError);
    expect(server.requests).toHaveLength(0);
  });
});

describe('PartFile (write-behind)', () => {
  it('counts each byte once in `received` while a batch is written, and hashes only written bytes', async () => {
    const part = await PartFile.open(path.join(dir, 'x.part'), 10 * 1024 * 1024);
    const first = randomBytes(1024 * 1024); // one full batch: its write starts at once
    await part.append(first);
    expect(part.received).toBe(first.length);
    // Wait for the write to land without calling flush(): the window in which a byte could be
    // counted both as written and as in flight.
    for (let i = 0; i < 500 && part.bytes < first.length; i++) await new Promise((r) => setTimeout(r, 2));
    expect(part.bytes).toBe(first.length);
    expect(part.received).toBe(first.length);
    const tail = randomBytes(1000);
    await part.append(tail);
    expect([part.bytes, part.received]).toEqual([first.length, first.length + tail.length]);
    await part.flush();
    expect(part.bytes).toBe(first.length + tail.length);
    expect(part.digest()).toBe(sha256(Buffer.concat([first, tail])));
    await part.close();
    expect(fs.readFileSync(path.join(dir, 'x.part')).equals(Buffer.concat([first, tail]))).toBe(true);
  });
});

describe('computeThrottleDelayMs', () => {
  it('is zero while enough tokens are available', () => {
    expect(computeThrottleDelayMs(1000, 1000, 500)).toBe(0);
    expect(computeThrottleDelayMs(5000, 10, 500)).toBe(0);
  });

  it('is the time needed to earn the missing tokens', () => {
    expect(computeThrottleDelayMs(0, 1000, 1000)).toBe(1000);
    expect(computeThrottleDelayMs(250, 1000, 1000)).toBe(750);
    expect(computeThrottleDelayMs(-500, 500, 1000)).toBe(1000);
    expect(computeThrottleDelayMs(0, 1, 3)).toBe(334);
  });

  it('treats a non-positive rate as unlimited', () => {
    expect(computeThrottleDelayMs(0, 1_000_000, 0)).toBe(0);
    expect(computeThrottleDelayMs(0, 1_000_000, -5)).toBe(0);
  });
});

describe('TokenBucket', () => {
  it('allows the initial burst, then charges debt and refills with time', () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 1000, () => now);

    expect(bucket.take(1000)).toBe(0);
    expect(bucket.take(500)).toBe(500);
    now += 500;
    expect(bucket.take(0)).toBe(0);
    expect(bucket.take(1000)).toBe(1000);
    now += 5000;
    // Idle time refills only up to the burst size.
    expect(bucket.take(1500)).toBe(500);
  });
});

describe('computeBackoffMs', () => {
  it('doubles from 200ms and caps at 5s', () => {
    expect([0, 1, 2, 3, 4, 5, 10].map(computeBackoffMs)).toEqual([200, 400, 800, 1600, 3200, 5000, 5000]);
  });
});

describe('assertFreeSpace', () => {
  it('accepts when the available blocks cover the remaining bytes', () => {
    expect(() => assertFreeSpace({ bavail: 10, bsize: 4096 }, 40_960, '/data')).not.toThrow();
    expect(availableBytes({ bavail: 10n, bsize: 4096n })).toBe(40_960);
  });

  it('fails with a non-retryable DOWNLOAD_NO_SPACE naming the numbers', () => {
    let caught: unknown;
    try {
      assertFreeSpace({ bavail: 10, bsize: 4096 }, 40_961, '/data');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DownloadError);
    const err = caught as DownloadError;
    expect(err.code).toBe('DOWNLOAD_NO_SPACE');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('/data');
    expect(err.message).toContain('40961 bytes');
    expect(err.message).toContain('40960 bytes');
  });
});

describe('createProgressReporter', () => {
  it('reports at most once per interval and always reports the final count once', () => {
    let now = 1000;
    const calls: Array<[number, number]> = [];
    const progress = createProgressReporter((r, t) => calls.push([r, t]), 100, { intervalMs: 250, now: () => now });

    progress.update(10);
    now += 100;
    progress.update(20);
    now += 150;
    progress.update(30);
    now += 10;
    progress.update(100);
    progress.finish(100);
    progress.finish(100);

    expect(calls).toEqual([
      [10, 100],
      [30, 100],
      [100, 100],
    ]);
  });

  it('does not report the final count twice when it was the last update', () => {
    const calls: number[] = [];
    const progress = createProgressReporter((r) => calls.push(r), 50);

    progress.update(50);
    progress.finish(50);

    expect(calls).toEqual([50]);
  });

  it('swallows exceptions thrown by the listener', () => {
    const progress = createProgressReporter(() => {
      throw new Error('ui crashed');
    }, 10);

    expect(() => progress.update(1)).not.toThrow();
    expect(() => progress.finish(10)).not.toThrow();
  });
});
