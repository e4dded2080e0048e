// The agent's own most recent log lines, kept in memory: the fallback for a failed verdict's
// journalTail where journalctl is missing or fails (containers, a journal the agent may not read).
// A log destination: src/agent/run.ts tees the agent's log into it.
import { stdoutDestination, type LogDestination } from '../util/log.js';

/** Lines kept by default; the verdict asks for `journalLines` (default 50) of them. */
export const LOG_TAIL_LINES = 200;
/** Longest line kept; longer ones are cut (a log line with a whole HTTP body in it, say). */
export const LOG_TAIL_LINE_CHARS = 1024;

export class LogTail {
  private readonly ring: string[];
  private next = 0;
  private count = 0;
  private partial = '';

  constructor(readonly capacity: number = LOG_TAIL_LINES) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
    this.ring = new Array<string>(capacity);
  }

  /** The log destination interface: chunks of newline-terminated lines (a chunk may hold several). */
  write(chunk: string | Uint8Array): boolean {
    const text = this.partial + (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    const parts = text.split('\n');
    this.partial = (parts.pop() ?? '').slice(0, LOG_TAIL_LINE_CHARS);
    for (const line of parts) this.push(line);
    return true;
  }

  /** Adds one line (without its newline). */
  push(line: string): void {
    if (line === '') return;
    this.ring[this.next] = line.length > LOG_TAIL_LINE_CHARS ? `${line.slice(0, LOG_TAIL_LINE_CHARS)}…` : line;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** The last `n` lines (all when omitted), oldest first. */
  lines(n: number = this.capacity): string[] {
    const take = Math.max(0, Math.min(n, this.count));
    const out: string[] = [];
    for (let i = take; i > 0; i--) out.push(this.ring[(this.next - i + this.capacity) % this.capacity] as string);
    return out;
  }

  clear(): void {
    this.next = 0;
    this.count = 0;
    this.partial = '';
  }
}

/** The process-wide tail that the agent's logger feeds and failed verdicts read. */
export const agentLogTail = new LogTail();

/** A log destination writing each line to `main` (default: stdout, as createLogger uses) and to `tail`. */
export function teeLogDestination(tail: LogTail = agentLogTail, main: LogDestination = stdoutDestination()): LogDestination {
  return {
    write(line: string): boolean {
      main.write(line);
      tail.write(line);
      return true;
    },
  };
}
