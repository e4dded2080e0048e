// downloadArtifact over https with both HTTP clients: the fixed-buffer one (tls.connect with a user
// read buffer, the default) and Node's https module. A real TLS server with a throwaway PKI made by
// the openssl CLI (tests/helpers/pki.ts): a trusted server certificate, one from a CA nobody
// trusts, SNI by host name, client certificates, and a resume with Range over TLS.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DownloadError, downloadArtifact, type DownloadRequest, type HttpClientChoice } from '../../src/fetch/index.js';
import { TestPki } from '../helpers/pki.js';

const BODY_DEFAULT = randomBytes(400_000);
const BODY = BODY_DEFAULT;
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

let pki: TestPki;
let dir: string;
const servers: https.Server[] = [];

beforeAll(async () => {
  pki = await TestPki.create();
});

afterAll(() => pki?.remove());

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-https-'));
});

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => r());
    })),
  );
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Seen {
  range: string | undefined;
  servername: string | false | null;
  clientCn: string | string[] | undefined;
}

/** An https server for BODY (honouring Range) that records what each request looked like. */
async function httpsServer(options: { cert?: { certFile: string; keyFile: string }; requireClientCert?: boolean; dropFirstAfter?: number; body?: Buffer } = {}) {
  const cert = options.cert ?? pki.server;
  const BODY = options.body ?? BODY_DEFAULT;
  const seen: Seen[] = [];
  const server = https.createServer(
    {
      cert: fs.readFileSync(cert.certFile),
      key: fs.readFileSync(cert.keyFile),
      ...(options.requireClientCert ? { ca: fs.readFileSync(pki.ca.certFile), requestCert: true, rejectUnauthorized: true } : {}),
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      seen.push({ range: req.headers.range, servername: socket.servername, clientCn: peer?.subject?.CN });
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = { 'content-length': String(BODY.length - start) };
      if (start > 0) headers['content-range'] = `bytes ${start}-${BODY.length - 1}/${BODY.length}`;
      res.writeHead(start > 0 ? 206 : 200, headers);
      if (seen.length === 1 && options.dropFirstAfter !== undefined) {
        res.write(BODY.subarray(0, options.dropFirstAfter), () => res.socket?.end());
        return;
      }
      res.end(BODY.subarray(start));
    },
  );
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { port, seen };
}

const dest = (): string => path.join(dir, 'a.bin');

describe.each(['fixed-buffer', 'node-http'] as const)('downloadArtifact over https (%s client)', (client: HttpClientChoice) => {
  const request = (url: string, extra: Partial<DownloadRequest> = {}): DownloadRequest => ({
    url,
    destPath: dest(),
    sha256: BODY_SHA,
    size: BODY.length,
    httpClient: client,
    tls: { ca: fs.readFileSync(pki.ca.certFile, 'utf8') },
    ...extra,
  });

  it('downloads from a server whose certificate the given CA signed, sending SNI for a host name', async () => {
    const server = await httpsServer();

    const result = await downloadArtifact(request(`https://localhost:${server.port}/a.bin`));

    expect(result).toMatchObject({ attempts: 1, bytes: BODY.length });
    expect(fs.readFileSync(dest()).equals(BODY)).toBe(true);
    expect(server.seen[0]?.servername).toBe('localhost');
  });

  it('refuses a server certificate from a CA it does not trust, writing nothing', async () => {
    const untrusted = await pki.serverCert(pki.otherCa);
    const server = await httpsServer({ cert: untrusted });

    const err = await downloadArtifact(request(`https://127.0.0.1:${server.port}/a.bin`, { maxAttempts: 1 })).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).code).toBe('DOWNLOAD_NETWORK');
    expect((err as DownloadError).message).toMatch(/certificate/i);
    expect(server.seen).toHaveLength(0);
    expect(fs.existsSync(dest())).toBe(false);
  });

  it('presents a client certificate when the server requires one', async () => {
    const device = await pki.device('dev-https');
    const server = await httpsServer({ requireClientCert: true });
    const tls = {
      ca: fs.readFileSync(pki.ca.certFile, 'utf8'),
      cert: fs.readFileSync(device.certFile, 'utf8'),
      key: fs.readFileSync(device.keyFile, 'utf8'),
    };

    await downloadArtifact(request(`https://127.0.0.1:${server.port}/a.bin`, { tls }));

    expect(server.seen[0]?.clientCn).toBe('dev-https');
    expect(fs.readFileSync(dest()).equals(BODY)).toBe(true);
  });

  it('keeps every byte of a multi-MiB body while it pauses reading for the bandwidth limit and the disk', async () => {
    // TLS hands over all it decrypted from one TCP read even after reading was paused: a client that
    // reuses one buffer must not let that overwrite bytes it has not consumed yet.
    const big = randomBytes(5 * 1024 * 1024 + 4321);
    const server = await httpsServer({ body: big });

    await downloadArtifact(
      request(`https://127.0.0.1:${server.port}/a.bin`, {
        sha256: createHash('sha256').update(big).digest('hex'),
        size: big.length,
        bandwidthLimitBytesPerSec: 4 * 1024 * 1024,
      }),
    );

    expect(fs.readFileSync(dest()).equals(big)).toBe(true);
  });

  it('resumes with Range over TLS after the connection drops mid-body', async () => {
    const server = await httpsServer({ dropFirstAfter: 150_001 });

    const result = await downloadArtifact(request(`https://127.0.0.1:${server.port}/a.bin`));

    expect(result.attempts).toBe(2);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.seen[1]?.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(150_001);
    expect(fs.readFileSync(dest()).equals(BODY)).toBe(true);
  });
});
