// Starts a real mosquitto (Debian package) on a random loopback port for one test file. A missing
// mosquitto is a test failure with an install hint, never a skip.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const BINARIES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'];

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export class Mosquitto {
  private proc: ChildProcess | null = null;
  private output = '';
  private constructor(readonly port: number, private readonly confPath: string) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** `persistent`: sessions and queued messages survive a broker restart (for outage tests). */
  static async start(opts: { persistent?: boolean } = {}): Promise<Mosquitto> {
    const bin = BINARIES.find((b) => existsSync(b));
    if (!bin) throw new Error('mosquitto is not installed: run `apt-get install -y mosquitto` (the README test command does)');
    const dir = mkdtempSync(join(tmpdir(), 'ota-mosq-'));
    const port = await freePort();
    const conf = join(dir, 'mosquitto.conf');
    // mosquitto started as root drops to its own user, which must be able to write the database.
    if (opts.persistent) chmodSync(dir, 0o777);
    const persistence = opts.persistent ? `persistence true\npersistence_location ${dir}/\n` : 'persistence false\n';
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n${persistence}log_dest stderr\nlog_type error\nlog_type warning\n`);
    const m = new Mosquitto(port, conf);
    await m.startProcess();
    return m;
  }

  async startProcess(): Promise<void> {
    const bin = BINARIES.find((b) => existsSync(b)) as string;
    const proc = spawn(bin, ['-c', this.confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${this.output}`);
      if (await canConnect(this.port)) return;
      await sleep(50);
    }
    throw new Error(`mosquitto did not listen on ${this.port} within 10 s: ${this.output}`);
  }

  /** Stops the broker (the outage); `startProcess` brings it back on the same port. */
  async stopProcess(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
    this.proc = null;
  }

  async stop(): Promise<void> {
    await this.stopProcess();
  }
}
