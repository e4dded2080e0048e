// Benchmark: 1,000 simulated devices (the real Agent, one SQLite store, simulated A/B slots and one
// MQTT connection each, all in this process) take a 100% rollout through one mosquitto. Reports
// the rollout wall time (publish -> every device committed and idle), messages per second and peak
// memory; the goal is under 60 s on a 2-core machine. Not part of the test suite.
//
//   npm run bench                                  # 1,000 devices, throw-away mosquitto, no faults
//   npm run bench -- --devices 2000 --faults       # more devices, standard fault mix
//   npm run bench -- --broker mqtt://host:1883     # an existing broker
//
// Built with plain tsc (bench/tsconfig.json -> .tmp/bench/); tsx is not a dependency.
import { cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { renderSimulateReport, runSimulation } from '../src/fleet/simulate.js';

const GOAL_MS = 60_000;

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    broker: { type: 'string' },
    faults: { type: 'boolean', default: false },
    dir: { type: 'string' },
    'json-out': { type: 'string' },
  },
});

function mosquittoVersion(): string {
  try {
    return execFileSync('/usr/sbin/mosquitto', ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0] ?? '?';
  } catch (e) {
    // `mosquitto -h` exits non-zero after printing its version.
    return String((e as { stdout?: string }).stdout ?? '').split('\n')[0] || 'unknown';
  }
}

async function main(): Promise<number> {
  const devices = Number(values.devices);
  const env = `node ${process.version}, ${cpus().length} CPU(s) (${cpus()[0]?.model ?? '?'}), ${values.broker ? `broker ${values.broker}` : mosquittoVersion()}`;
  process.stdout.write(`fleet-rollout: ${devices} devices, 100% rollout${values.faults ? ', fault mix' : ''}; ${env}\n`);
  const faults = values.faults ? { failShare: 0.05, fallbackShare: 0.02, dropShare: 0.05, dupShare: 0.05, reorderShare: 0.05 } : {};
  const report = await runSimulation({
    devices,
    percent: 100,
    ...(values.broker ? { brokerUrl: values.broker } : {}),
    ...(values.dir ? { dir: values.dir } : {}),
    ...faults,
    concurrency: 50,
    timeoutMs: 600_000,
    progressEveryMs: 5000,
    onProgress: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`\n${renderSimulateReport(report).join('\n')}\n`);
  const met = report.ok && report.timing.rolloutMs < GOAL_MS;
  const verdict = met
    ? `goal MET: ${(report.timing.rolloutMs / 1000).toFixed(1)} s < ${GOAL_MS / 1000} s`
    : `goal MISSED: ${(report.timing.rolloutMs / 1000).toFixed(1)} s (${report.ok ? `${((report.timing.rolloutMs - GOAL_MS) / 1000).toFixed(1)} s over` : 'outcomes wrong'})`;
  process.stdout.write(`${verdict}\n`);
  const line = JSON.stringify({
    bench: 'fleet-rollout',
    at: new Date().toISOString(),
    env,
    devices,
    faults: values.faults,
    ok: report.ok,
    startupS: report.timing.startupMs / 1000,
    rolloutS: report.timing.rolloutMs / 1000,
    messages: report.messages.total,
    messagesPerSecond: report.messages.perSecond,
    reboots: report.sim.reboots,
    cpuS: Math.round(report.cpu.processSeconds * 10) / 10,
    brokerCpuS: report.cpu.brokerSeconds === null ? null : Math.round(report.cpu.brokerSeconds * 10) / 10,
    peakRssMiB: Math.round(report.memory.peakRssBytes / 2 ** 20),
    brokerPeakRssMiB: report.memory.brokerPeakRssBytes === null ? null : Math.round(report.memory.brokerPeakRssBytes / 2 ** 20),
    goalMet: met,
  });
  process.stdout.write(`${line}\n`);
  if (values['json-out']) appendFileSync(values['json-out'], `${line}\n`);
  return met ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fleet-rollout: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(2);
  },
);
