// Helpers for bench/perf-run.ts: /proc readings, child processes the bench owns (ended by PID, never
// by name), small statistics and the result table. Not part of the test suite.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

// ---- /proc --------------------------------------------------------------------------------------

function statusField(pid: number | 'self', field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Resident set size in bytes (VmRSS), null if the process is gone. */
export function rssOf(pid: number | 'self'): number | null {
  return statusField(pid, 'VmRSS');
}

/** Peak RSS since start or since the last resetPeakRss() (VmHWM). */
export function peakRssOf(pid: number | 'self'): number | null {
  return statusField(pid, 'VmHWM');
}

/** Resets VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); false if not allowed. */
export function resetPeakRss(pid: number | 'self'): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Proportional set size in bytes (smaps_rollup), null if unreadable. */
export function pssOf(pid: number): number | null {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function threadsOf(pid: number): number | null {
  try {
    const m = /^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** CPU time in ns summed over the live threads (schedstat: ns resolution, unlike utime+stime). */
export function schedNsOf(pid: number): number | null {
  try {
    let ns = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const first = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0];
      ns += Number(first ?? 0);
    }
    return ns;
  } catch {
    return null;
  }
}

/** utime+stime in clock ticks (USER_HZ, 100 on Linux) from /proc/<pid>/stat. */
export function ticksOf(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return null;
  }
}

/** Descendant PIDs of `pid` (for RSS/CPU summed over a process tree). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (c) for (const x of c.split(/\s+/)) out.push(Number(x), ...childrenOf(Number(x)));
    }
  } catch {
    // gone
  }
  return out;
}

// ---- statistics ---------------------------------------------------------------------------------

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export const MiB = 2 ** 20;
export const mib = (b: number | null): string => (b === null || Number.isNaN(b) ? 'n/a' : (b / MiB).toFixed(1));

/** Samples `read()` `count` times, `everyMs` apart; median of the non-null readings. */
export async function sampleMedian(read: () => number | null, count: number, everyMs: number): Promise<number | null> {
  const xs: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = read();
    if (v !== null) xs.push(v);
    if (i < count - 1) await sleep(everyMs);
  }
  return xs.length ? median(xs) : null;
}

// ---- child processes ----------------------------------------------------------------------------

const owned = new Set<ChildProcess>();
let hooked = false;

/** Spawns a child the bench owns; it is SIGKILLed by PID if the bench exits without ending it. */
export function own(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  // Never let a full pipe stall a child: output nobody listens to is read and dropped.
  p.stdout?.resume();
  p.stderr?.resume();
  owned.add(p);
  p.once('exit', () => owned.delete(p));
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of owned) {
        try {
          if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
  return p;
}

export function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. */
export async function end(p: ChildProcess | null | undefined, graceMs = 5000): Promise<void> {
  if (!p || !alive(p) || p.pid === undefined) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  if ((await Promise.race([exited.then(() => 'ok'), sleep(graceMs).then(() => 'late')])) === 'late') {
    p.kill('SIGKILL');
    await exited;
  }
}

/** Wall time of one command run to completion, in ms; rejects on a non-zero exit. */
export async function timeRun(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<number> {
  const t0 = process.hrtime.bigint();
  const p = own(cmd, args, opts);
  let err = '';
  p.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${err.slice(-500)}`);
  return ms;
}

// ---- the table ------------------------------------------------------------------------------------

export interface Row {
  figure: string;
  measured: string;
  baseline: string;
  ratio: string;
  goal: string;
  verdict: 'MET' | 'MISSED' | 'n/a' | 'info';
}

export function renderTable(rows: Row[]): string {
  const head = ['figure', 'measured', 'baseline (same run)', 'ratio', 'goal', 'verdict'];
  const body = rows.map((r) => [r.figure, r.measured, r.baseline, r.ratio, r.goal, r.verdict]);
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((c) => `| ${c.join(' | ')} |`)].join('\n');
}
