// FAULT INJECTION for the reliability harness (tests/faults/, docs/reliability.md). It lets a test
// kill the agent with SIGKILL exactly before or exactly after the SQLite transaction that persists
// one lifecycle transition, which a kill from outside can only hit by luck. It is inert unless the
// environment variable is set, and a device never sets it:
//
//   OTA_AGENT_CRASH_AT=before:<from>-><to>:<EVENT>    e.g. before:downloading->installing:DOWNLOADED
//   OTA_AGENT_CRASH_AT=after:<from>-><to>:<EVENT>
//   OTA_AGENT_CRASH_ONCE=/path/marker   (optional) fire only while this file does not exist, and
//                                       create it first, so the restarted agent runs on.
import { closeSync, existsSync, fsyncSync, openSync, writeSync } from 'node:fs';

export type CrashWhen = 'before' | 'after';

interface CrashPoint {
  when: CrashWhen;
  key: string;
}

function parse(spec: string | undefined): CrashPoint | null {
  const m = spec ? /^(before|after):(.+)$/.exec(spec.trim()) : null;
  return m ? { when: m[1] as CrashWhen, key: m[2] as string } : null;
}

const point = parse(process.env.OTA_AGENT_CRASH_AT);
const marker = process.env.OTA_AGENT_CRASH_ONCE;

/** `<from>-><to>:<EVENT>`, the key a crash point names. */
export function crashKey(from: string, to: string, event: string): string {
  return `${from}->${to}:${event}`;
}

/**
 * Kills this process with SIGKILL if the configured crash point is `when` this transition. Called by
 * the store right before, and right after, the transaction that writes a transition. When that
 * transaction is nested in an outer one (accepting an announcement, a command), "after" waits for
 * the outer commit: the kill runs as a microtask, before anything is published.
 */
export function crashPoint(when: CrashWhen, from: string, to: string, event: string, inOuterTransaction: boolean): void {
  if (!point || point.when !== when || point.key !== crashKey(from, to, event)) return;
  if (marker) {
    if (existsSync(marker)) return;
    const fd = openSync(marker, 'w');
    writeSync(fd, `${when}:${point.key} pid ${process.pid}\n`);
    fsyncSync(fd);
    closeSync(fd);
  }
  const kill = () => process.kill(process.pid, 'SIGKILL');
  if (when === 'after' && inOuterTransaction) queueMicrotask(kill);
  else kill();
}
