// A loopback HTTP server for artifacts (demo and tests). Serves files from one directory by
// basename only, and can trickle bytes so a download stays in flight long enough to be observed.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { basename, join } from 'node:path';
import type { AddressInfo } from 'node:net';

export interface ArtifactServer {
  url(name: string): string;
  /** Bytes per second for subsequent responses (0 = unlimited). */
  setRate(bytesPerSecond: number): void;
  requests: string[];
  close(): Promise<void>;
}

export async function startArtifactServer(dir: string): Promise<ArtifactServer> {
  let rate = 0;
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const name = basename(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/'));
    requests.push(`${req.method} /${name}${req.headers.range ? ` ${req.headers.range}` : ''}`);
    const path = join(dir, name);
    if (!name || !existsSync(path)) {
      res.writeHead(404).end('not found');
      return;
    }
    const size = statSync(path).size;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Math.min(Number(m[1]), size) : 0;
    res.writeHead(m ? 206 : 200, {
      'content-length': String(size - start),
      ...(m ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    const stream = createReadStream(path, { start, highWaterMark: 1024 });
    if (rate <= 0) {
      stream.pipe(res);
      return;
    }
    const perTick = Math.max(1, Math.floor(rate / 10));
    stream.pause();
    let pending = Buffer.alloc(0);
    let ended = false;
    stream.on('data', (c) => {
      pending = Buffer.concat([pending, c as Buffer]);
      stream.pause();
    });
    stream.on('end', () => (ended = true));
    const timer = setInterval(() => {
      if (pending.length < perTick && !ended) stream.resume();
      const chunk = pending.subarray(0, perTick);
      pending = pending.subarray(chunk.length);
      if (chunk.length) res.write(chunk);
      if (ended && pending.length === 0) {
        clearInterval(timer);
        res.end();
      }
    }, 100);
    stream.resume();
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    setRate: (r) => (rate = r),
    requests,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
