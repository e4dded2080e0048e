// A single try of one check; retries, timing and verdicts are the runner's business.
import type { HealthContext } from './context.js';
import type { HealthCheckSpec } from './schema.js';
import { runCommandAttempt } from './run-command.js';
import { runHttpAttempt } from './run-http.js';
import { runMqttBrokerAttempt } from './run-mqtt-broker.js';
import { runScriptDirAttempt } from './run-script-dir.js';
import { runTcpAttempt } from './run-tcp.js';
import type { AttemptOutcome } from './outcome.js';

export function runAttempt(spec: HealthCheckSpec, signal?: AbortSignal, context: HealthContext = {}): Promise<AttemptOutcome> {
  switch (spec.kind) {
    case 'command':
      return runCommandAttempt(spec, signal);
    case 'http':
      return runHttpAttempt(spec, signal);
    case 'tcp':
      return runTcpAttempt(spec, signal);
    case 'systemd-unit':
      // Loaded on first use: it pulls in dbus-next, which a device without such a check never needs
      // (with node-cron made lazy too: idle RSS -2.2 MiB, start -25 ms; docs/performance.md).
      return import('./run-systemd-unit.js').then((m) => m.runSystemdUnitAttempt(spec, signal));
    case 'mqtt-broker':
      return runMqttBrokerAttempt(spec, context, signal);
    case 'script-dir':
      return runScriptDirAttempt(spec, signal);
    default: {
      const unreachable: never = spec;
      throw new Error(`unknown health check kind: ${JSON.stringify(unreachable)}`);
    }
  }
}
