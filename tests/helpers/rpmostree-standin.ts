// Starts and stops the rpm-ostree STAND-IN (tests/helpers/rpmostree-standin.py, with
// rpmostree-standin-booted.py for what runs inside the booted system) for an OSTree
// testbed: a python3-gi process that owns org.projectatomic.rpmostree1 on the testbed's private
// dbus-daemon and does the work with libostree and the ostree tool inside the simulated booted
// system. It is not rpm-ostree (see the header of the .py file for what it copies and what not).
// Like rpm-ostreed on a real machine it lives for one boot: the tests stop it before a simulated
// power cycle and start a new one in the next boot.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { OstreeTestbed } from './ostree-testbed.js';
import { SYSTEM_PYTHON } from './ostree-testbed.js';

export const STANDIN_SCRIPT = fileURLToPath(new URL('./rpmostree-standin.py', import.meta.url));

export class RpmOstreeStandin {
  /** Every line the stand-in logged (stderr, "standin: ..."), across restarts. */
  readonly log: string[] = [];
  private child: ChildProcess | null = null;
  starts = 0;
  /** Fault injection passed to the next start (see --fault in the .py file). */
  fault: 'stage-booted-commit' | undefined;

  constructor(private readonly testbed: OstreeTestbed) {}

  /** Starts the daemon for the current boot; resolves once it owns its name on the bus. */
  async start(): Promise<void> {
    if (this.child) throw new Error('the rpm-ostree stand-in is already running');
    const tb = this.testbed;
    const child = spawn(SYSTEM_PYTHON, [STANDIN_SCRIPT, '--bus', tb.busAddress, '--enter', tb.enterScript, '--sysroot', tb.sysroot, '--run-dir', join(tb.dir, 'run'), '--python', SYSTEM_PYTHON, ...(this.fault ? ['--fault', this.fault] : [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    this.child = child;
    this.starts++;
    let errBuf = '';
    child.stderr?.on('data', (b: Buffer) => {
      errBuf += b.toString();
      let i;
      while ((i = errBuf.indexOf('\n')) >= 0) {
        this.log.push(errBuf.slice(0, i));
        errBuf = errBuf.slice(i + 1);
      }
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`the rpm-ostree stand-in did not get ready within 20 s:\n${this.log.slice(-20).join('\n')}`)), 20_000);
      child.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        this.child = null;
        reject(new Error(`the rpm-ostree stand-in exited (${String(code)}) before it was ready (python3-gi and gir1.2-ostree-1.0 are needed):\n${this.log.slice(-20).join('\n')}${errBuf}`));
      });
    });
    child.on('exit', () => {
      if (this.child === child) this.child = null;
    });
  }

  get running(): boolean {
    return this.child !== null;
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = null;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  }
}
