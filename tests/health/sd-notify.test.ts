// sd_notify through systemd-notify: a stand-in systemd-notify that records what it was asked
// (Node cannot receive unix datagrams, so the stand-in is the receiver), and the real
// systemd-notify for the error path.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdNotify, startServiceNotifier, watchdogIntervalMs } from '../../src/health/index.js';
import { writeExecutable } from './helpers.js';

let dir: string;
let fake: string;
let record: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ota-notify-'));
  record = join(dir, 'calls');
  fake = writeExecutable(join(dir, 'systemd-notify'), `#!/bin/sh\nprintf '%s %s\\n' "$NOTIFY_SOCKET" "$*" >> '${record}'\n`);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const calls = (): string[] => (existsSync(record) ? readFileSync(record, 'utf8').trim().split('\n') : []);

describe('sdNotify', () => {
  it('does nothing without NOTIFY_SOCKET (not under systemd)', async () => {
    rmSync(record, { force: true });
    expect(await sdNotify(['--ready'], { env: {}, command: fake })).toBe(false);
    expect(calls()).toEqual([]);
  });

  it('runs systemd-notify with the arguments when NOTIFY_SOCKET is set', async () => {
    rmSync(record, { force: true });
    expect(await sdNotify(['--ready'], { env: { NOTIFY_SOCKET: '/run/systemd/notify' }, command: fake })).toBe(true);
    expect(calls()).toEqual(['/run/systemd/notify --ready']);
  });

  it('rejects with what the real systemd-notify says when it cannot deliver', async () => {
    await expect(sdNotify(['WATCHDOG=1'], { env: { NOTIFY_SOCKET: join(dir, 'no-such-socket'), PATH: process.env.PATH ?? '/usr/bin:/bin' } })).rejects.toThrow(/systemd-notify WATCHDOG=1 failed: .*(No such file|Connection refused)/);
  });
});

describe('watchdog', () => {
  it('pings at half of WatchdogSec, only for the watched pid', () => {
    expect(watchdogIntervalMs({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '60000000' } })).toBe(30_000);
    expect(watchdogIntervalMs({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '60000000', WATCHDOG_PID: '123' }, pid: 123 })).toBe(30_000);
    expect(watchdogIntervalMs({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '60000000', WATCHDOG_PID: '123' }, pid: 456 })).toBeNull();
    expect(watchdogIntervalMs({ env: { WATCHDOG_USEC: '60000000' } })).toBeNull();
    expect(watchdogIntervalMs({ env: { NOTIFY_SOCKET: '/x' } })).toBeNull();
    expect(watchdogIntervalMs({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: 'soon' } })).toBeNull();
  });

  it('READY=1 at start, WATCHDOG=1 while running, STOPPING=1 at stop, nothing after', async () => {
    rmSync(record, { force: true });
    const errors: string[] = [];
    const env = { NOTIFY_SOCKET: '@sd', WATCHDOG_USEC: '200000' };
    const notifier = await startServiceNotifier((what, e) => errors.push(`${what}: ${String(e)}`), { env, command: fake });
    expect(calls()).toEqual(['@sd --ready']);
    for (let i = 0; i < 50 && calls().filter((c) => c === '@sd WATCHDOG=1').length < 2; i++) await sleep(50);
    await notifier.stop();
    const after = calls();
    expect(after[0]).toBe('@sd --ready');
    expect(after.filter((c) => c === '@sd WATCHDOG=1').length).toBeGreaterThanOrEqual(2);
    expect(after.at(-1)).toBe('@sd STOPPING=1');
    await sleep(250);
    expect(calls()).toEqual(after);
    expect(errors).toEqual([]);
  });

  it('reports a failing systemd-notify instead of throwing', async () => {
    const errors: string[] = [];
    const notifier = await startServiceNotifier((what) => errors.push(what), { env: { NOTIFY_SOCKET: '/x' }, command: join(dir, 'missing') });
    await notifier.stop();
    expect(errors).toEqual(['READY=1', 'STOPPING=1']);
  });
});
