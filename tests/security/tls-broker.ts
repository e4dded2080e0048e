// A real mosquitto with mutual TLS and the ACL, configured from the very files in docs/mosquitto/
// (only the port and the directories are replaced), and a few MQTT client helpers that speak TLS.
// tests/helpers/mosquitto.ts starts plaintext brokers only, hence this file.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { freePort } from '../helpers/mosquitto.js';
import type { CertPair } from '../helpers/pki.js';

const BINARIES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'];
export const DOCS_CONF = new URL('../../docs/mosquitto/mosquitto-tls.conf', import.meta.url);
export const DOCS_ACL = new URL('../../docs/mosquitto/acl', import.meta.url);

/** Replaces `from` by `to` and fails if `from` is not in the template: the docs must not drift. */
function replaceAll(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`docs/mosquitto/mosquitto-tls.conf no longer contains "${from}"; update the test`);
  return text.split(from).join(to);
}

export class TlsBroker {
  private proc: ChildProcess | null = null;
  output = '';
  private constructor(readonly port: number, readonly dir: string, private readonly confPath: string) {}

  get url(): string {
    return `mqtts://127.0.0.1:${this.port}`;
  }

  /** `ca` verifies client certificates; `server` is what the broker presents. */
  static async start(tls: { caFile: string; server: CertPair }): Promise<TlsBroker> {
    const bin = BINARIES.find((b) => existsSync(b));
    if (!bin) throw new Error('mosquitto is not installed: run `apt-get install -y mosquitto` (the README test command does)');
    // mosquitto started as root runs as user "mosquitto": everything it reads must be world-readable,
    // and its persistence directory writable.
    const dir = mkdtempSync(join(tmpdir(), 'ota-mosq-tls-'));
    chmodSync(dir, 0o755);
    const etc = join(dir, 'etc');
    const data = join(dir, 'data');
    mkdirSync(etc, { mode: 0o755 });
    mkdirSync(data, { mode: 0o777 });
    chmodSync(data, 0o777);
    for (const [src, name] of [[tls.caFile, 'ca.crt'], [tls.server.certFile, 'server.crt'], [tls.server.keyFile, 'server.key']] as const) {
      copyFileSync(src, join(etc, name));
      chmodSync(join(etc, name), 0o644);
    }
    copyFileSync(DOCS_ACL, join(etc, 'acl'));
    chmodSync(join(etc, 'acl'), 0o644);
    const port = await freePort();
    let conf = readFileSync(DOCS_CONF, 'utf8');
    conf = replaceAll(conf, '\nlistener 8883\n', `\nlistener ${port} 127.0.0.1\n`);
    conf = replaceAll(conf, '/etc/mosquitto/ota/', `${etc}/`);
    conf = replaceAll(conf, '/var/lib/mosquitto/', `${data}/`);
    conf += '\n# test only\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n';
    const confPath = join(etc, 'mosquitto.conf');
    writeFileSync(confPath, conf, { mode: 0o644 });
    const b = new TlsBroker(port, dir, confPath);
    const proc = spawn(bin, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    b.proc = proc;
    proc.stderr?.on('data', (d: Buffer) => (b.output += d.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${b.output}`);
      if (await canConnect(port)) return b;
      await sleep(50);
    }
    throw new Error(`mosquitto did not listen on ${port} within 10 s: ${b.output}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** TLS client options from files: the CA to verify the broker, and optionally a client certificate. */
export function tlsOptions(caFile: string, client?: CertPair): IClientOptions {
  return {
    ca: readFileSync(caFile),
    ...(client ? { cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) } : {}),
    rejectUnauthorized: true,
  };
}

export type ConnectOutcome = { ok: true; client: MqttClient } | { ok: false; error: string };

/**
 * One connection attempt, no retries: resolves with the client after CONNACK, or with what went
 * wrong (TLS error, connection closed before CONNACK, timeout). Never throws.
 */
export function tryConnect(url: string, opts: IClientOptions, timeoutMs = 10_000): Promise<ConnectOutcome> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: timeoutMs, clean: true, ...opts });
    let settled = false;
    const done = (o: ConnectOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!o.ok) client.end(true);
      resolve(o);
    };
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), timeoutMs + 1000);
    client.once('connect', () => done({ ok: true, client }));
    client.once('error', (e) => done({ ok: false, error: e.message }));
    client.once('close', () => done({ ok: false, error: 'connection closed before CONNACK' }));
  });
}

/** Collects every message a client receives, and waits for one. */
export class Inbox {
  readonly messages: Array<{ topic: string; payload: string; retain: boolean }> = [];
  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => this.messages.push({ topic, payload: payload.toString('utf8'), retain: packet.retain }));
  }

  async waitFor<T>(pick: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const v = pick();
      if (v) return v;
      await sleep(50);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }

  on(topic: string): Array<{ topic: string; payload: string; retain: boolean }> {
    return this.messages.filter((m) => m.topic === topic);
  }
}
