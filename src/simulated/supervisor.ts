// Plays the role of systemd (Restart=always) plus the power button for a SIMULATED device: runs
// `ota-agent run` as a child process and starts it again when it exits with the simulated-reboot
// code. Used by the demo and the tests; a real device has systemd and a real reboot.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { REBOOT_EXIT_CODE } from './backend.js';


/** The compiled agent; from the TypeScript sources (tests) that is the build in dist/. */
export const AGENT_ENTRY = [new URL('../cli/ota-agent.js', import.meta.url), new URL('../../dist/cli/ota-agent.js', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => existsSync(p)) ?? fileURLToPath(new URL('../cli/ota-agent.js', import.meta.url));

export interface SupervisorOptions {
  configPath: string;
  /** Receives the agent's stdout/stderr lines (JSON logs). */
  onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  onBoot?: (bootNumber: number) => void;
  env?: NodeJS.ProcessEnv;
  /** The agent's entry script; default AGENT_ENTRY (dist/cli), e.g. dist/bundle/ota-agent.mjs instead. */
  entry?: string;
}

export class SimulatedDevice {
  private child: ChildProcess | null = null;
  private boots = 0;
  private stopped = false;
  private exitWaiters: Array<(code: number | null) => void> = [];
  private killedUnasked = false;

  constructor(private readonly opts: SupervisorOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last agent process died of a signal nobody here sent (it killed itself, or the OOM killer did): systemd's Restart=on-failure would start it again. */
  get diedUnasked(): boolean {
    return this.killedUnasked;
  }

  get bootCount(): number {
    return this.boots;
  }

  start(): void {
    this.stopped = false;
    this.spawnAgent();
  }

  private spawnAgent(): void {
    this.boots++;
    this.killedUnasked = false;
    this.opts.onBoot?.(this.boots);
    const child = spawn(process.execPath, [this.opts.entry ?? AGENT_ENTRY, '--config', this.opts.configPath, 'run'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.opts.env },
    });
    this.child = child;
    const lines = (stream: 'stdout' | 'stderr') => {
      let buf = '';
      return (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.opts.onOutput?.(buf.slice(0, i), stream);
          buf = buf.slice(i + 1);
        }
      };
    };
    child.stdout?.on('data', lines('stdout'));
    child.stderr?.on('data', lines('stderr'));
    child.on('exit', (code, signal) => {
      this.child = null;
      this.killedUnasked = signal !== null && !this.stopped;
      if (code === REBOOT_EXIT_CODE && !this.stopped) {
        this.spawnAgent();
        return;
      }
      const waiters = this.exitWaiters;
      this.exitWaiters = [];
      waiters.forEach((w) => w(code));
    });
  }

  /** kill -9: the agent dies wherever it is, as in a crash. */
  crash(): Promise<number | null> {
    return this.kill('SIGKILL');
  }

  kill(signal: NodeJS.Signals): Promise<number | null> {
    const c = this.child;
    if (!c) return Promise.resolve(null);
    this.stopped = true;
    const p = new Promise<number | null>((r) => this.exitWaiters.push(r));
    c.kill(signal);
    return p;
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
  }

  /** Resolves when the agent exits for a reason other than a simulated reboot. */
  exited(): Promise<number | null> {
    if (!this.child) return Promise.resolve(null);
    return new Promise((r) => this.exitWaiters.push(r));
  }
}
