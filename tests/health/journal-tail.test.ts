// The journal tail of a failed verdict: journalctl (a stand-in script that records its arguments,
// and the real one on this machine), the fallback to the agent's own log lines, and the ring
// buffer the agent's logger tees into.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectJournalTail, HealthCheckSpec, HealthVerdict, LOG_TAIL_LINES, LogTail, runHealthChecks, teeLogDestination } from '../../src/health/index.js';
import { createLogger } from '../../src/util/log.js';
import { writeExecutable } from './helpers.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ota-journal-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A journalctl stand-in: records its arguments, prints `count` numbered lines and journalctl's markers. */
function fakeJournalctl(name: string, body: string): string {
  return writeExecutable(join(dir, name), `#!/bin/sh\nprintf '%s\\n' "$*" > '${join(dir, `${name}.args`)}'\n${body}\n`);
}

const failing = [HealthCheckSpec.parse({ kind: 'command', name: 'app', argv: ['false'] })];

describe('journal tail on a failed verdict', () => {
  it('takes the last lines of this boot from journalctl -b 0 -n N --no-pager -o short-iso', async () => {
    const bin = fakeJournalctl('journalctl-ok', `echo '-- Boot 1234 --'; for i in 1 2 3 4 5 6; do echo "2030-01-01T00:00:0\${i}+0000 dev app[42]: line $i"; done`);
    const verdict = await runHealthChecks(failing, { journalLines: 4, collectJournal: (lines) => collectJournalTail({ lines, journalctl: bin }) });
    expect(verdict.passed).toBe(false);
    expect(readFileSync(join(dir, 'journalctl-ok.args'), 'utf8').trim()).toBe('-b 0 -n 4 --no-pager -o short-iso');
    expect(verdict.journalTail).toEqual({ source: 'journal', lines: ['2030-01-01T00:00:03+0000 dev app[42]: line 3', '2030-01-01T00:00:04+0000 dev app[42]: line 4', '2030-01-01T00:00:05+0000 dev app[42]: line 5', '2030-01-01T00:00:06+0000 dev app[42]: line 6'] });
    expect(HealthVerdict.safeParse(verdict).success).toBe(true);
  });

  it("falls back to the agent's own log when journalctl has no entries, fails or is missing", async () => {
    const tail = new LogTail(10);
    tail.write('{"msg":"one"}\n{"msg":"two"}\n');
    const empty = fakeJournalctl('journalctl-empty', "echo '-- No entries --'; echo 'No journal files were found.' >&2");
    expect(await collectJournalTail({ lines: 5, journalctl: empty, fallback: tail })).toEqual({
      source: 'agent-log',
      lines: ['{"msg":"one"}', '{"msg":"two"}'],
      note: 'journalctl returned no entries: No journal files were found.',
    });
    const broken = fakeJournalctl('journalctl-broken', "echo 'Failed to get boot ID' >&2; exit 1");
    expect(await collectJournalTail({ lines: 1, journalctl: broken, fallback: tail })).toEqual({ source: 'agent-log', lines: ['{"msg":"two"}'], note: 'journalctl failed: exit code 1: Failed to get boot ID' });
    const missing = await collectJournalTail({ lines: 5, journalctl: join(dir, 'no-such-journalctl'), fallback: tail });
    expect(missing.source).toBe('agent-log');
    expect(missing.note).toContain('ENOENT');
    const hung = fakeJournalctl('journalctl-hung', 'exec sleep 30');
    const slow = await collectJournalTail({ lines: 5, journalctl: hung, fallback: tail, timeoutMs: 200 });
    expect(slow).toMatchObject({ source: 'agent-log', note: 'journalctl failed: killed after 200 ms' });
  });

  it('uses the real journalctl of this machine, or says why not', async () => {
    const tail = new LogTail(10);
    tail.push('agent line');
    const j = await collectJournalTail({ lines: 3, fallback: tail });
    if (j.source === 'journal') {
      expect(j.lines.length).toBeGreaterThan(0);
      expect(j.lines.length).toBeLessThanOrEqual(3);
    } else {
      // e.g. a container without a journal: "journalctl returned no entries: No journal files were found."
      expect(j.lines).toEqual(['agent line']);
      expect(j.note).toMatch(/^journalctl (returned no entries|failed)/);
    }
  });

  it('is absent on a passed verdict and when turned off', async () => {
    let collected = 0;
    const collectJournal = async () => {
      collected += 1;
      return { source: 'journal' as const, lines: ['x'] };
    };
    const passed = await runHealthChecks([HealthCheckSpec.parse({ kind: 'command', name: 'ok', argv: ['true'] })], { journalLines: 50, collectJournal });
    expect(passed.journalTail).toBeUndefined();
    const off = await runHealthChecks(failing, { journalLines: 0, collectJournal });
    expect(off.journalTail).toBeUndefined();
    expect(collected).toBe(0);
  });

  it("a failing collector is a note, not a lost verdict", async () => {
    const verdict = await runHealthChecks(failing, { journalLines: 5, collectJournal: () => Promise.reject(new Error('boom')) });
    expect(verdict.passed).toBe(false);
    expect(verdict.journalTail).toEqual({ source: 'agent-log', lines: [], note: 'collecting the journal failed: boom' });
  });
});

describe('LogTail', () => {
  it('keeps the last lines in order across chunk boundaries, and cuts long lines', () => {
    const tail = new LogTail(3);
    tail.write('a\nb');
    tail.write('c\nd\n');
    expect(tail.lines()).toEqual(['a', 'bc', 'd']);
    tail.write('e\n');
    expect(tail.lines()).toEqual(['bc', 'd', 'e']);
    expect(tail.lines(2)).toEqual(['d', 'e']);
    expect(tail.lines(0)).toEqual([]);
    tail.push('x'.repeat(5000));
    expect(tail.lines(1)[0]?.length).toBe(1025);
    tail.clear();
    expect(tail.lines()).toEqual([]);
    expect(new LogTail().capacity).toBe(LOG_TAIL_LINES);
    expect(() => new LogTail(0)).toThrow(RangeError);
  });

  it("receives the agent logger's lines through the tee, and the main stream still gets them", async () => {
    const tail = new LogTail(20);
    const seen: string[] = [];
    const main = new Writable({
      write(chunk: Buffer, _enc, cb) {
        seen.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger('info', 'ota-agent', teeLogDestination(tail, main));
    log.info({ check: 'app' }, 'health check failed');
    log.debug('not at this level');
    await new Promise((r) => setImmediate(r));
    expect(tail.lines()).toHaveLength(1);
    expect(JSON.parse(tail.lines()[0] ?? '{}')).toMatchObject({ msg: 'health check failed', check: 'app', level: 30 });
    expect(seen.join('')).toContain('"msg":"health check failed"');
  });
});
