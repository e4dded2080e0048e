// The runner's grace period and overall deadline, with real commands; and the `health` config
// section that sets them for the agent.
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/config/schema.js';
import { agentRunChecks, healthRunOptions } from '../../src/health/agent-options.js';
import { DEADLINE_EXCEEDED, graceRemainingMs, HealthCheckSpec, HealthVerdict, runHealthChecks } from '../../src/health/index.js';

// true/false rather than node: a node start costs ~0.5 s on a busy 2-core machine, true/false a few ms.
const pass = (name: string, extra: Record<string, unknown> = {}) => HealthCheckSpec.parse({ kind: 'command', name, argv: ['true'], ...extra });
const fail = (name: string, extra: Record<string, unknown> = {}) => HealthCheckSpec.parse({ kind: 'command', name, argv: ['false'], ...extra });
const hang = (name: string) => HealthCheckSpec.parse({ kind: 'command', name, argv: ['sleep', '30'], timeoutMs: 60_000 });

function config(health?: Record<string, number>): Config {
  return Config.parse({
    deviceId: 'dev-1',
    compatible: 'acme-gw',
    stateDir: '/var/lib/ota-agent',
    mqtt: { url: 'mqtt://127.0.0.1:1', allowPlaintext: true },
    trust: { keys: [{ publicKeyFile: '/etc/ota-agent/fleet.pub' }] },
    backend: { type: 'simulated' },
    ...(health ? { health } : {}),
  });
}

describe('health config section', () => {
  it('defaults keep existing configs valid', () => {
    expect(config().health).toEqual({ graceSeconds: 0, deadlineSeconds: 300, journalLines: 50 });
    expect(config({ graceSeconds: 20 }).health).toEqual({ graceSeconds: 20, deadlineSeconds: 300, journalLines: 50 });
  });

  it('rejects unknown keys and out-of-range values', () => {
    expect(() => config({ graceSecs: 1 })).toThrow();
    expect(() => config({ deadlineSeconds: 0 })).toThrow();
    expect(() => config({ journalLines: -1 })).toThrow();
  });

  it('turns into runner options: grace minus uptime, deadline in ms, journal lines', () => {
    const opts = healthRunOptions(config({ graceSeconds: 30, deadlineSeconds: 120, journalLines: 7 }), { uptimeSeconds: () => 12.5 });
    expect(opts).toMatchObject({ graceMs: 17_500, deadlineMs: 120_000, journalLines: 7 });
    expect(opts.context?.mqtt?.().url).toBe('mqtt://127.0.0.1:1');
    expect(healthRunOptions(config({ graceSeconds: 30 }), { uptimeSeconds: () => 3600 }).graceMs).toBe(0);
    expect(graceRemainingMs(0, 5)).toBe(0);
  });
});

describe('grace period', () => {
  it('waits before the first check, not between checks', async () => {
    const started = performance.now();
    const verdict = await runHealthChecks([pass('a'), pass('b')], { graceMs: 300 });
    const total = performance.now() - started;
    expect(verdict.passed).toBe(true);
    expect(total).toBeGreaterThanOrEqual(295);
    // The checks themselves did not absorb the wait.
    for (const r of verdict.results) expect(r.durationMs).toBeLessThan(290);
  });

  it('is what the agent waits after boot: graceSeconds minus the uptime', async () => {
    const run = agentRunChecks(config({ graceSeconds: 10 }), { uptimeSeconds: () => 9.75 });
    const started = performance.now();
    const verdict = await run([pass('a')], new AbortController().signal);
    expect(verdict.passed).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(245);
  });

  it('is skipped without checks and cancelled by the signal', async () => {
    const started = performance.now();
    await runHealthChecks([], { graceMs: 10_000 });
    expect(performance.now() - started).toBeLessThan(1_000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('agent stopping')), 50);
    await expect(runHealthChecks([pass('a')], { graceMs: 10_000, signal: controller.signal })).rejects.toThrow('agent stopping');
  });
});

describe('overall deadline', () => {
  it('cuts the check in progress short and fails all remaining ones with "deadline exceeded"', { timeout: 10_000 }, async () => {
    const started = performance.now();
    const verdict = await runHealthChecks([pass('first'), hang('slow'), pass('later'), pass('optional', { required: false })], { deadlineMs: 400 });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(HealthVerdict.safeParse(verdict).success).toBe(true);
    expect(verdict.passed).toBe(false);
    expect(verdict.failed).toEqual(['slow', 'later']);
    const [first, slow, later, optional] = verdict.results;
    expect(first).toMatchObject({ passed: true, attempts: 1 });
    expect(slow).toMatchObject({ passed: false, attempts: 1, error: `${DEADLINE_EXCEEDED} (400 ms for all checks)` });
    expect(later).toMatchObject({ passed: false, attempts: 0, durationMs: 0, error: `${DEADLINE_EXCEEDED} (400 ms for all checks)` });
    expect(later?.outputTail).toBe(`not run: ${DEADLINE_EXCEEDED} (400 ms for all checks)`);
    expect(optional).toMatchObject({ passed: false, attempts: 0, required: false });
  });

  it('ends the pause between retries', async () => {
    const started = performance.now();
    const verdict = await runHealthChecks([fail('flaky', { retries: 10, intervalMs: 5_000 })], { deadlineMs: 300 });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(verdict.results[0]).toMatchObject({ passed: false, attempts: 1 });
    expect(verdict.results[0]?.error).toContain(DEADLINE_EXCEEDED);
  });

  it('does not touch checks that finish in time, and an abort still rejects', async () => {
    const verdict = await runHealthChecks([pass('a'), fail('b', { required: false })], { deadlineMs: 30_000 });
    expect(verdict.passed).toBe(true);
    expect(verdict.results[1]?.error).toBe('exit code 1, expected 0');
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('agent stopping')), 100);
    await expect(runHealthChecks([hang('slow')], { deadlineMs: 30_000, signal: controller.signal })).rejects.toThrow('agent stopping');
  });
});
