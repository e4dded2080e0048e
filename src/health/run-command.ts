// One attempt of a `command` check. The program runs in its own process group so that a timeout
// can kill everything it started: a hung `sh -c '...'` would otherwise leave its grandchildren
// running, and those keep the output pipes open forever.
import { spawn, type ChildProcess } from 'node:child_process';
import { startDeadline } from './deadline.js';
import { describeError } from './describe-error.js';
import { failed, type AttemptOutcome } from './outcome.js';
import { OutputTail } from './output-tail.js';
import type { CommandCheckSpec } from './schema.js';

export function runCommandAttempt(spec: CommandCheckSpec, signal?: AbortSignal): Promise<AttemptOutcome> {
  return new Promise<AttemptOutcome>((resolve) => {
    const deadline = startDeadline(spec.timeoutMs, signal);
    const output = new OutputTail();
    let settled = false;
    let exited = false;

    const settle = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      deadline.dispose();
      deadline.signal.removeEventListener('abort', onDeadline);
      resolve(outcome);
    };

    if (deadline.signal.aborted) {
      settle(failed(deadline.reason()));
      return;
    }

    const [file = '', ...args] = spec.argv;
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        shell: false,
        // A new session makes the child a process group leader, so kill(-pid) reaches its descendants.
        detached: true,
        cwd: spec.cwd,
        env: spec.env ? { ...process.env, ...spec.env } : process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      // spawn throws synchronously only for invalid arguments such as an empty program name.
      settle(failed(describeError(err)));
      return;
    }

    // Once the deadline has passed and our child is gone, report without waiting for 'close': output
    // held open by a process that left the group (e.g. via setsid) would delay it indefinitely.
    const settleTimedOut = (detail = ''): void => {
      child.stdout?.destroy();
      child.stderr?.destroy();
      const reason = deadline.reason() + detail;
      settle(failed(reason, output.text() || reason));
    };

    function onDeadline(): void {
      killGroup(child);
      if (exited) settleTimedOut(' (the command exited but a background process kept its output open)');
    }

    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk));

    child.on('error', (err) => {
      // Without a pid the program never started (ENOENT, EACCES, bad cwd); 'close' follows with a
      // meaningless code, so report the spawn error itself.
      if (child.pid !== undefined) return;
      const missingCwd = spec.cwd !== undefined && (err as NodeJS.ErrnoException).code === 'ENOENT';
      const reason = describeError(err) + (missingCwd ? ` (or cwd "${spec.cwd}" does not exist)` : '');
      settle(failed(reason));
    });

    child.on('exit', () => {
      exited = true;
      // Not killing again here: the child is reaped, so its pid could in theory already be reused.
      if (deadline.signal.aborted) settleTimedOut();
    });

    child.on('close', (code, killSignal) => {
      if (deadline.signal.aborted) {
        settleTimedOut();
        return;
      }
      const tail = output.text();
      if (code === spec.expectExitCode) settle({ passed: true, outputTail: tail });
      else if (code === null) settle(failed(`killed by signal ${killSignal ?? 'unknown'}`, tail));
      else settle(failed(`exit code ${code}, expected ${spec.expectExitCode}`, tail));
    });

    deadline.signal.addEventListener('abort', onDeadline, { once: true });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the whole group is already gone.
  }
}
