// A single try of one check; retries, timing and verdicts are the runner's business.
import type { HealthContext } from './context.js';
import type { HealthCheckSpec } from './schema.js';
import type { AttemptOutcome } from './outcome.js';

// Each runner is loaded on first use: checks run only while a new boot is verified, and their
// imports (child_process, http, an MQTT probe, dbus-next for systemd units) are not needed by an
// idle agent (idle memory, docs/performance.md).

export function runAttempt(spec: HealthCheckSpec, signal?: AbortSignal, context: HealthContext = {}): Promise<AttemptOutcome> {
  switch (spec.kind) {
    case 'command':
      return import('./run-command.js').then((m) => m.runCommandAttempt(spec, signal));
    case 'http':
      return import('./run-http.js').then((m) => m.runHttpAttempt(spec, signal));
    case 'tcp':
      return import('./run-tcp.js').then((m) => m.runTcpAttempt(spec, signal));
    case 'systemd-unit':
      return import('./run-systemd-unit.js').then((m) => m.runSystemdUnitAttempt(spec, signal));
    case 'mqtt-broker':
      return import('./run-mqtt-broker.js').then((m) => m.runMqttBrokerAttempt(spec, context, signal));
    case 'script-dir':
      return import('./run-script-dir.js').then((m) => m.runScriptDirAttempt(spec, signal));
    default: {
      const unreachable: never = spec;
      throw new Error(`unknown health check kind: ${JSON.stringify(unreachable)}`);
    }
  }
}
