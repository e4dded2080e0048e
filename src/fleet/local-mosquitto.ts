// A throw-away mosquitto on a random loopback port, for `ota-fleet simulate` without --broker and
// for the benchmark. Needs the Debian package (apt-get install mosquitto); MQTT 5, no persistence.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BINARIES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });

export interface LocalBroker {
  url: string;
  pid: number | undefined;
  /** Peak resident memory of the broker process (VmHWM), in bytes, if readable. */
  peakRssBytes(): number | null;
  /** CPU time (user + system) the broker used so far, in seconds, if readable. */
  cpuSeconds(): number | null;
  stop(): Promise<void>;
}

export async function startLocalMosquitto(): Promise<LocalBroker> {
  const bin = BINARIES.find((b) => existsSync(b));
  if (!bin) throw new Error('no --broker given and mosquitto is not installed (apt-get install -y mosquitto)');
  const dir = mkdtempSync(join(tmpdir(), 'ota-fleet-mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // max_queued_messages: a simulated fleet briefly queues many QoS 1 messages per client.
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\nlog_dest stderr\nlog_type error\n`);
  const proc: ChildProcess = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${output}`);
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    pid: proc.pid,
    peakRssBytes: () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : null;
      } catch {
        return null;
      }
    },
    cpuSeconds: () => {
      try {
        // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks (100/s on Linux).
        const stat = readFileSync(`/proc/${proc.pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return (Number(fields[11]) + Number(fields[12])) / 100;
      } catch {
        return null;
      }
    },
    stop: async () => {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
