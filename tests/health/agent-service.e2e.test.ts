// The built agent as systemd runs it, and `ota-agent check` / `status` as an operator uses them:
// READY=1, WATCHDOG=1 pings and STOPPING=1 through a stand-in systemd-notify on PATH (it records
// what it is asked; Node cannot receive unix datagrams), against a real mosquitto; then the check
// command's exit codes, table, JSON verdict with journal tail, and the last verdict in `status`.
// Runs dist/: `npm run build` first (npm test does).
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HealthVerdict } from '../../src/health/index.js';
import { simulatedDeviceConfig } from '../../src/demo/device-config.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { writeExecutable } from './helpers.js';

const AGENT = join(process.cwd(), 'dist', 'cli', 'ota-agent.js');

let broker: Mosquitto;
let dir: string;
let passingConfig: string;
let failingConfig: string;
let notifyLog: string;
let binDir: string;

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [AGENT, ...args], { env, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

const notifications = (): string[] => (existsSync(notifyLog) ? readFileSync(notifyLog, 'utf8').trim().split('\n') : []);

beforeAll(async () => {
  if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run \`npm run build\` first`);
  broker = await Mosquitto.start();
  dir = mkdtempSync(join(tmpdir(), 'ota-agent-svc-'));
  const publicKeyPem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const base = simulatedDeviceConfig({ dir, deviceId: 'svc-1', brokerUrl: broker.url, protocolVersion: 5, publicKeyPem });
  const scripts = join(dir, 'greenboot-wanted.d');
  mkdirSync(scripts);
  writeExecutable(join(scripts, '10-warn'), '#!/bin/sh\necho "fan speed low"\nexit 1\n');
  passingConfig = join(dir, 'passing.json');
  writeFileSync(passingConfig, JSON.stringify({ ...base, healthChecks: [{ kind: 'command', name: 'app', argv: ['true'] }, { kind: 'mqtt-broker', name: 'broker', timeoutMs: 5000 }] }));
  failingConfig = join(dir, 'failing.json');
  writeFileSync(
    failingConfig,
    JSON.stringify({
      ...base,
      health: { journalLines: 5 },
      healthChecks: [
        { kind: 'command', name: 'broken', argv: ['sh', '-c', 'echo "db unreachable" >&2; exit 4'] },
        { kind: 'script-dir', name: 'wanted-scripts', path: scripts, mode: 'wanted', required: false },
      ],
    }),
  );
  binDir = join(dir, 'bin');
  mkdirSync(binDir);
  notifyLog = join(dir, 'notify.log');
  writeExecutable(join(binDir, 'systemd-notify'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${notifyLog}'\n`);
});
afterAll(async () => {
  await broker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('ota-agent run under systemd (Type=notify, WatchdogSec)', () => {
  it('sends READY=1 once started, WATCHDOG=1 every WatchdogSec/2, STOPPING=1 on SIGTERM', { timeout: 40_000 }, async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}`, NOTIFY_SOCKET: '@ota-test-notify', WATCHDOG_USEC: '300000' };
    delete env.WATCHDOG_PID;
    const agent = spawn(process.execPath, [AGENT, '-c', passingConfig, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    agent.stdout.on('data', (b: Buffer) => (output += b.toString()));
    agent.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    try {
      for (let i = 0; i < 300 && notifications().filter((n) => n === 'WATCHDOG=1').length < 2; i++) {
        if (agent.exitCode !== null) throw new Error(`agent exited early (${agent.exitCode}): ${output}`);
        await sleep(50);
      }
      expect(notifications()[0]).toBe('--ready');
      expect(output).toContain('"msg":"booted"');
      expect(notifications().filter((n) => n === 'WATCHDOG=1').length).toBeGreaterThanOrEqual(2);
    } finally {
      agent.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(notifications().at(-1)).toBe('STOPPING=1');
    expect(output).not.toContain('sd_notify');
    // The log goes through the tee into the in-memory tail and still reaches stdout to the end.
    expect(output).toContain('"msg":"ota-agent stopped"');
  });
});

describe('ota-agent check and status', () => {
  it('passes: prints the table, exits 0, and status shows the verdict', async () => {
    const r = await cli(['-c', passingConfig, 'check']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+KIND\s+REQUIREMENT/);
    expect(r.stdout).toMatch(/broker\s+mqtt-broker\s+required\s+PASS/);
    expect(r.stdout).toContain('verdict: PASS (2/2 checks passed)');
    const status = await cli(['-c', passingConfig, 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^last check {2}PASS \(2\/2 passed\) at \S+ — check run$/m);
  });

  it('fails: exits 1, JSON verdict with the journal tail, recorded as the last check', async () => {
    const r = await cli(['-c', failingConfig, 'check', '--json']);
    expect(r.code).toBe(1);
    const verdict = HealthVerdict.parse(JSON.parse(r.stdout));
    expect(verdict.passed).toBe(false);
    expect(verdict.failed).toEqual(['broken']);
    expect(verdict.results[0]).toMatchObject({ name: 'broken', error: 'exit code 4, expected 0', outputTail: 'db unreachable\n' });
    expect(verdict.results[1]).toMatchObject({ name: 'wanted-scripts', passed: true });
    expect(verdict.results[1]?.outputTail).toContain('FAIL 10-warn');
    expect(verdict.journalTail).toBeDefined();
    expect(['journal', 'agent-log']).toContain(verdict.journalTail?.source);
    expect(verdict.journalTail?.lines.length).toBeLessThanOrEqual(5);

    const text = await cli(['-c', failingConfig, 'check']);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('verdict: FAIL (required checks failed: broken)');
    expect(text.stdout).toContain('--- broken ---\ndb unreachable');
    expect(text.stdout).toContain('--- wanted-scripts ---\nFAIL 10-warn');
    expect(text.stdout).toMatch(/--- (last \d+ line\(s\) of (the journal of this boot|the agent's own log)|no log lines to show)/);

    const status = await cli(['-c', failingConfig, 'status', '--json']);
    const json = JSON.parse(status.stdout) as { lastCheck: { source: string; verdict: { passed: boolean; failed: string[] } } };
    expect(json.lastCheck).toMatchObject({ source: 'check', verdict: { passed: false, failed: ['broken'] } });
    const statusText = await cli(['-c', failingConfig, 'status']);
    expect(statusText.stdout).toMatch(/^last check {2}FAIL \(required checks failed: broken\) at \S+ — check run$/m);
  });
});
