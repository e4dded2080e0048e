// The fixed-buffer HTTP client (src/fetch/raw-http.ts) against a real TCP server that writes exact
// bytes: framings Node's http server would not produce on demand (split chunk lines, trailers,
// interim 1xx, bodies delimited by close, bytes after the body), malformed responses, and the
// request it sends. Plus the framing parser on its own, fed one byte at a time.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DownloadError, downloadArtifact, type DownloadErrorCode } from '../../src/fetch/index.js';
import { ChunkedDecoder, bodyFraming, findHeadEnd, parseHead } from '../../src/fetch/http-framing.js';

const BODY = randomBytes(200_000);
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

type RawHandler = (socket: net.Socket, request: string, index: number) => void | Promise<void>;

const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-rawhttp-'));
});

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A TCP server that reads one request head and lets `handler` write whatever bytes it wants. */
async function rawServer(handler: RawHandler): Promise<{ url: (p?: string) => string; requests: string[] }> {
  const requests: string[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let head = '';
    const onData = (b: Buffer): void => {
      head += b.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      requests.push(head);
      void handler(socket, head, requests.length - 1);
    };
    socket.on('data', onData);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return { url: (p = '/a.bin') => `http://127.0.0.1:${port}${p}`, requests };
}

/** Writes `parts` one by one, each flushed before the next, so the client sees separate reads. */
async function writeApart(socket: net.Socket, parts: Array<string | Buffer>): Promise<void> {
  for (const part of parts) {
    await new Promise<void>((r) => socket.write(part, () => r()));
    await sleep(5);
  }
}

const dest = (): string => path.join(dir, 'a.bin');

async function download(url: string, extra: { maxAttempts?: number; bandwidthLimitBytesPerSec?: number; headers?: Record<string, string> } = {}) {
  return downloadArtifact({ url, destPath: dest(), sha256: BODY_SHA, size: BODY.length, httpClient: 'fixed-buffer', ...extra });
}

async function expectCode(promise: Promise<unknown>, code: DownloadErrorCode): Promise<DownloadError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(DownloadError);
  expect((err as DownloadError).code, (err as DownloadError).message).toBe(code);
  return err as DownloadError;
}

function expectBodyAtDest(): void {
  expect(fs.readFileSync(dest()).equals(BODY)).toBe(true);
  expect(fs.existsSync(`${dest()}.part`)).toBe(false);
}

describe('fixed-buffer client: framings', () => {
  it('decodes a chunked body whose size lines, extensions, data and trailers arrive split across reads', async () => {
    const server = await rawServer(async (socket) => {
      const a = BODY.subarray(0, 70_001);
      const b = BODY.subarray(70_001);
      await writeApart(socket, [
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
        `${a.length.toString(16)};name=value\r`,
        '\n',
        a.subarray(0, 3),
        a.subarray(3),
        '\r\n',
        `${b.length.toString(16).toUpperCase()}\r\n`,
        b,
        '\r\n0\r\nX-Trailer: t\r\n',
        '\r\n',
      ]);
    });

    const result = await download(server.url());

    expect(result.attempts).toBe(1);
    expectBodyAtDest();
  });

  it('skips an interim 100 Continue and reads the response after it, even with its head sent byte by byte', async () => {
    const server = await rawServer(async (socket) => {
      const head = `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`;
      await writeApart(socket, [...head.slice(0, 40)]);
      await writeApart(socket, [head.slice(40), BODY]);
    });

    await download(server.url());

    expectBodyAtDest();
  });

  it('reads a body without Content-Length until the server closes (HTTP/1.0 style)', async () => {
    const server = await rawServer((socket) => {
      socket.write('HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n');
      socket.end(BODY);
    });

    await download(server.url());

    expectBodyAtDest();
  });

  it('ends the body at Content-Length, ignoring what follows and without waiting for the close', async () => {
    const server = await rawServer((socket) => {
      // The socket stays open: finishing relies on the length alone.
      socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`), BODY, Buffer.from('junk')]));
    });

    const result = await download(server.url());

    expect(result.attempts).toBe(1);
    expectBodyAtDest();
  });

  it('applies backpressure and a bandwidth limit without losing or reordering bytes', async () => {
    const server = await rawServer((socket) => {
      socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`), BODY]));
    });

    // The bucket holds one second of the rate, so 200 KB at 150 KB/s must pause at least once.
    await download(server.url(), { bandwidthLimitBytesPerSec: 150_000 });

    expectBodyAtDest();
  });
});

describe('fixed-buffer client: broken responses', () => {
  it('reports a chunked body cut off mid-chunk as a closed connection and keeps the received prefix', async () => {
    const server = await rawServer(async (socket) => {
      await writeApart(socket, ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', `${(50_000).toString(16)}\r\n`, BODY.subarray(0, 20_000)]);
      socket.end();
    });

    const err = await expectCode(download(server.url(), { maxAttempts: 1 }), 'DOWNLOAD_NETWORK');

    expect(err.message).toContain('connection closed before the response was complete');
    expect(fs.readFileSync(`${dest()}.part`).equals(BODY.subarray(0, 20_000))).toBe(true);
  });

  it('reports a connection closed before any response as a hang-up', async () => {
    const server = await rawServer((socket) => void socket.end());

    const err = await expectCode(download(server.url(), { maxAttempts: 1 }), 'DOWNLOAD_NETWORK');

    expect(err.message).toContain('socket hang up');
  });

  it.each([
    ['a garbage status line', 'HTTP/9 200 OK\r\n\r\n', 'invalid status line'],
    ['conflicting Content-Length headers', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 'invalid Content-Length'],
    ['a folded header line', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\r\n', 'invalid header line'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'invalid chunk size'],
    ['a head over 16 KiB', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 'larger than 16 KiB'],
  ])('refuses %s as a network error naming the problem', async (_what, response, reason) => {
    const server = await rawServer((socket) => void socket.end(response));

    const err = await expectCode(download(server.url(), { maxAttempts: 1 }), 'DOWNLOAD_NETWORK');

    expect(err.message).toContain(reason);
    expect(fs.existsSync(dest())).toBe(false);
  });
});

describe('fixed-buffer client: the request', () => {
  it('sends one GET with Host, path and query, our headers, credentials from the URL, and Connection: close', async () => {
    const server = await rawServer((socket) => {
      socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`), BODY]));
    });
    const url = server.url('/dir/a.bin?sig=1').replace('http://', 'http://user:p%40ss@');

    await download(url, { headers: { 'X-Device-Id': 'dev-1' } });

    const lines = server.requests[0]?.split('\r\n') ?? [];
    expect(lines[0]).toBe('GET /dir/a.bin?sig=1 HTTP/1.1');
    const port = new URL(url).port;
    expect(lines).toEqual(
      expect.arrayContaining([
        `Host: 127.0.0.1:${port}`,
        'user-agent: ota-agent',
        'x-device-id: dev-1',
        'accept-encoding: identity',
        `Authorization: Basic ${Buffer.from('user:p@ss').toString('base64')}`,
        'Connection: close',
      ]),
    );
    expectBodyAtDest();
  });

  it('refuses a header value with a line break before connecting, as http.request does', async () => {
    const server = await rawServer((socket) => void socket.end('HTTP/1.1 500 x\r\n\r\n'));

    const err = await expectCode(download(server.url(), { maxAttempts: 1, headers: { 'X-Evil': 'a\r\nInjected: 1' } }), 'DOWNLOAD_NETWORK');

    expect(err.message).toMatch(/Invalid character in header content/);
    expect(server.requests).toHaveLength(0);
  });
});

describe('http-framing', () => {
  it('finds the end of a head with CRLF or bare LF lines', () => {
    const crlf = 'HTTP/1.1 200 OK\r\nA: 1\r\n\r\n';
    const lf = 'HTTP/1.1 200 OK\nA: 1\n\n';
    expect(findHeadEnd(Buffer.from(`${crlf}body`), 0)).toBe(crlf.length);
    expect(findHeadEnd(Buffer.from(`${lf}body`), 0)).toBe(lf.length);
    expect(findHeadEnd(Buffer.from('HTTP/1.1 200 OK\r\nA: 1\r\n'), 0)).toBe(-1);
  });

  it('parses status and headers, joining repeated ones', () => {
    const head = parseHead(Buffer.from('HTTP/1.1 206 Partial Content\r\nX-A: 1\r\nx-a:  2 \r\nContent-Range: bytes 5-9/10\r\n\r\n'));
    expect(head.status).toBe(206);
    expect(head.statusMessage).toBe('Partial Content');
    expect(head.headers.get('x-a')).toBe('1, 2');
    expect(head.headers.get('content-range')).toBe('bytes 5-9/10');
  });

  it('picks the body framing as RFC 9112 orders it', () => {
    const framing = (status: number, headers: Record<string, string>) =>
      bodyFraming({ status, statusMessage: '', headers: new Map(Object.entries(headers)) });
    expect(framing(200, { 'transfer-encoding': 'gzip, chunked', 'content-length': '5' })).toEqual({ kind: 'chunked' });
    expect(framing(200, { 'transfer-encoding': 'gzip' })).toEqual({ kind: 'until-close' });
    expect(framing(200, { 'content-length': '7, 7' })).toEqual({ kind: 'length', length: 7 });
    expect(framing(200, {})).toEqual({ kind: 'until-close' });
    expect(framing(204, { 'content-length': '7' })).toEqual({ kind: 'none' });
    expect(framing(304, {})).toEqual({ kind: 'none' });
    expect(() => framing(200, { 'content-length': '-1' })).toThrow(/invalid Content-Length/);
  });

  it('decodes chunked data fed one byte at a time, without copying it', () => {
    const data = randomBytes(300);
    const wire = Buffer.concat([
      Buffer.from('a;x=1\r\n'),
      data.subarray(0, 10),
      Buffer.from('\r\n122\r\n'),
      data.subarray(10),
      Buffer.from('\r\n0\r\nTrailer: 1\r\n\r\n'),
    ]);
    const decoder = new ChunkedDecoder();
    const out: Buffer[] = [];
    for (let i = 0; i < wire.length; i++) {
      let pos = i;
      while (pos < i + 1) {
        const run = decoder.next(wire, pos, i + 1);
        if (run.stop > run.start) out.push(wire.subarray(run.start, run.stop));
        pos = run.next;
      }
    }
    expect(decoder.done).toBe(true);
    expect(Buffer.concat(out).equals(data)).toBe(true);
  });
});
