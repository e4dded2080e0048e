// Listens on the local control socket and hands requests to the agent.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { describeZodError } from '../core/signed-message.js';
import { ControlRequest, type ControlReply } from './protocol.js';

const MAX_REQUEST_BYTES = 16 * 1024;

export async function startControlServer(path: string, handle: (r: ControlRequest) => Promise<ControlReply>): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) {
        sock.end(JSON.stringify({ ok: false, reason: 'TOO_LARGE', message: 'request too large' }) + '\n');
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      void (async () => {
        let reply: ControlReply;
        try {
          const parsed = ControlRequest.safeParse(JSON.parse(line));
          reply = parsed.success ? await handle(parsed.data) : { ok: false, reason: 'MALFORMED_REQUEST', message: describeZodError(parsed.error) };
        } catch (e) {
          reply = { ok: false, reason: 'MALFORMED_REQUEST', message: e instanceof Error ? e.message : String(e) };
        }
        sock.end(JSON.stringify(reply) + '\n');
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}
