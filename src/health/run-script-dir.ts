// One attempt of a `script-dir` check: greenboot-compatible check folders. Every executable in the
// directory runs in lexical order, directly (no shell: the kernel honours each script's #! line),
// each in its own process group like a `command` check. One timeout covers the whole folder.
//   mode required: the first failure fails the check; the scripts after it do not run.
//   mode wanted:   every script runs; failures are listed, the check passes.
// outputTail lists every script's outcome, plus the last output line of each failure.
import { constants as fs, type Dirent } from 'node:fs';
import { access, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDeadline } from './deadline.js';
import { describeError } from './describe-error.js';
import { failed, type AttemptOutcome } from './outcome.js';
import { tailText } from './output-tail.js';
import { runCommandAttempt } from './run-command.js';
import type { ScriptDirCheckSpec } from './schema.js';

/** Longest last-output excerpt quoted per failed script. */
const EXCERPT_CHARS = 200;

export async function runScriptDirAttempt(spec: ScriptDirCheckSpec, signal?: AbortSignal): Promise<AttemptOutcome> {
  const deadline = startDeadline(spec.timeoutMs, signal);
  try {
    if (deadline.signal.aborted) return failed(deadline.reason());
    let scripts: string[];
    try {
      scripts = await executables(spec.path);
    } catch (e) {
      return failed(`cannot read ${spec.path}: ${describeError(e)}`);
    }
    if (scripts.length === 0) return { passed: true, outputTail: `no executables in ${spec.path}` };

    const lines: string[] = [];
    const failures: string[] = [];
    let stop: string | null = null;
    for (const name of scripts) {
      if (stop !== null) {
        lines.push(`SKIP ${name} (not run: ${stop})`);
        continue;
      }
      const started = performance.now();
      const unrunnable = await notExecutableDirectly(join(spec.path, name));
      if (unrunnable) {
        failures.push(`${name}: ${unrunnable}`);
        lines.push(`FAIL ${name} (0 ms): ${unrunnable}`);
        if (spec.mode === 'required') stop = `${name} failed`;
        continue;
      }
      // The folder's deadline is the script's outer signal; its own timeout is never the one that fires.
      const outcome = await runCommandAttempt(
        { kind: 'command', name: 'script', argv: [join(spec.path, name)], required: true, timeoutMs: spec.timeoutMs + 1000, retries: 0, intervalMs: 0, expectExitCode: 0 },
        deadline.signal,
      );
      const ms = Math.round(performance.now() - started);
      if (deadline.signal.aborted) {
        const why = deadline.reason();
        failures.push(`${name}: ${why}`);
        lines.push(`FAIL ${name} (${ms} ms): ${why}${excerpt(outcome.outputTail, why)}`);
        stop = why;
        continue;
      }
      if (outcome.passed) {
        lines.push(`PASS ${name} (${ms} ms)`);
        continue;
      }
      const error = outcome.error ?? 'failed';
      failures.push(`${name}: ${error}`);
      lines.push(`FAIL ${name} (${ms} ms): ${error}${excerpt(outcome.outputTail, error)}`);
      if (spec.mode === 'required') stop = `${name} failed`;
    }

    const report = tailText(Buffer.from(lines.join('\n') + '\n'));
    if (failures.length === 0) return { passed: true, outputTail: report };
    if (spec.mode === 'wanted' && !signal?.aborted) return { passed: true, outputTail: report };
    return failed(failures.join('; '), report);
  } finally {
    deadline.dispose();
  }
}

/** Names of the executable regular files in `dir` (symlinks followed), in lexical (code unit) order. */
async function executables(dir: string): Promise<string[]> {
  const entries: Dirent[] = await readdir(dir, { withFileTypes: true });
  const names: string[] = [];
  for (const entry of entries) {
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    const path = join(dir, entry.name);
    try {
      if (!(await stat(path)).isFile()) continue;
      await access(path, fs.X_OK);
    } catch {
      continue; // not executable for us, or a dangling link
    }
    names.push(entry.name);
  }
  return names.sort();
}

/**
 * Why the kernel would refuse to exec the file (ENOEXEC), or null. Checked up front because libc's
 * execvp, which spawn uses, quietly retries such a file with /bin/sh: a script without a #! line
 * would then run through a shell after all.
 */
async function notExecutableDirectly(path: string): Promise<string | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return null; // execute-only (mode 0111): the kernel may still run it; let exec decide
  }
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(4), 0, 4, 0);
    const head = buffer.subarray(0, bytesRead);
    if (head.subarray(0, 2).toString('latin1') === '#!') return null;
    if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return null; // ELF
    return 'ENOEXEC: neither a #! script nor an ELF binary (scripts run without a shell)';
  } finally {
    await fh.close();
  }
}

/** " — <last output line>" unless the output only repeats the error. */
function excerpt(output: string, error: string): string {
  const last = output.trim().split('\n').pop()?.trim() ?? '';
  if (last === '' || last === error) return '';
  return ` — ${last.length > EXCERPT_CHARS ? `…${last.slice(-EXCERPT_CHARS)}` : last}`;
}
