// The last lines of the current boot's journal for a failed verdict: what the device logged while
// its checks failed is usually the explanation. `journalctl -b 0 -n N --no-pager -o short-iso` via
// execFile; where it is missing, fails or has nothing (no journal, no permission to read it), the
// agent's own recent log lines instead, with a note saying why.
import { execFile } from 'node:child_process';
import { describeError } from './describe-error.js';
import { agentLogTail, type LogTail } from './log-tail.js';
import type { JournalTail } from './schema.js';

export interface JournalTailOptions {
  /** How many lines. */
  lines: number;
  /** journalctl binary; default `journalctl` from PATH. */
  journalctl?: string;
  /** Fallback source; default the process-wide agentLogTail. */
  fallback?: LogTail;
  /** Limit for journalctl; default 5000 ms. */
  timeoutMs?: number;
}

export async function collectJournalTail(opts: JournalTailOptions): Promise<JournalTail> {
  const fallback = opts.fallback ?? agentLogTail;
  const bin = opts.journalctl ?? 'journalctl';
  const args = ['-b', '0', '-n', String(opts.lines), '--no-pager', '-o', 'short-iso'];
  let note: string;
  try {
    const { stdout, stderr } = await execFileText(bin, args, opts.timeoutMs ?? 5000);
    const lines = stdout
      .split('\n')
      .map((l) => l.trimEnd())
      // journalctl's own markers ("-- No entries --", "-- Boot ... --") are not log lines.
      .filter((l) => l !== '' && !/^-- .* --$/.test(l));
    if (lines.length > 0) return { source: 'journal', lines: lines.slice(-opts.lines) };
    note = `journalctl returned no entries${stderr.trim() ? `: ${oneLine(stderr)}` : ''}`;
  } catch (e) {
    note = `journalctl failed: ${describeError(e)}`;
  }
  return { source: 'agent-log', lines: fallback.lines(opts.lines), note };
}

function execFileText(file: string, args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024, encoding: 'utf8', env: { ...process.env, SYSTEMD_PAGER: '', LC_ALL: 'C.UTF-8' } }, (err, stdout, stderr) => {
      if (!err) {
        resolve({ stdout, stderr });
        return;
      }
      const code = (err as { code?: unknown }).code;
      const detail = oneLine(stderr);
      // Exit status or signal: say so with journalctl's own complaint; otherwise the spawn error (ENOENT).
      const what = typeof code === 'number' ? `exit code ${code}` : err.killed ? `killed after ${timeoutMs} ms` : describeError(err);
      reject(new Error(detail ? `${what}: ${detail}` : what, { cause: err }));
    });
  });
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 300 ? `${t.slice(0, 300)}…` : t;
}
