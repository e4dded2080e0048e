// Public API of the health check module.
export {
  CommandCheckSpec,
  HttpCheckSpec,
  TcpCheckSpec,
  SystemdUnitCheckSpec,
  MqttBrokerCheckSpec,
  ScriptDirCheckSpec,
  HealthCheckSpec,
  HealthCheckKind,
  HealthCheckResult,
  HealthVerdict,
  HealthSettings,
  HEALTH_SETTINGS_DEFAULTS,
  JournalTail,
  type HealthCheckSpecInput,
} from './schema.js';
export { runHealthChecks, graceRemainingMs, DEADLINE_EXCEEDED, type RunHealthChecksOptions } from './runner.js';
export { formatVerdictTable } from './format-verdict.js';
export { runAttempt } from './attempt.js';
export type { HealthContext, MqttConnectSettings } from './context.js';
export { runCommandAttempt } from './run-command.js';
export { runHttpAttempt, MAX_BODY_BYTES } from './run-http.js';
export { runTcpAttempt } from './run-tcp.js';
export { runSystemdUnitAttempt } from './run-systemd-unit.js';
export { runMqttBrokerAttempt, PROBE_CLIENT_SUFFIX } from './run-mqtt-broker.js';
export { runScriptDirAttempt } from './run-script-dir.js';
export { collectJournalTail, type JournalTailOptions } from './journal-tail.js';
export { LogTail, agentLogTail, teeLogDestination, LOG_TAIL_LINES } from './log-tail.js';
export { sdNotify, watchdogIntervalMs, startServiceNotifier, type SdNotifyOptions, type ServiceNotifier } from './sd-notify.js';
export type { AttemptOutcome } from './outcome.js';
export { OUTPUT_TAIL_BYTES } from './output-tail.js';
