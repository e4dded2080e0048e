// Public API of the health check module.
export {
  CommandCheckSpec,
  HttpCheckSpec,
  TcpCheckSpec,
  HealthCheckSpec,
  HealthCheckKind,
  HealthCheckResult,
  HealthVerdict,
  type HealthCheckSpecInput,
} from './schema.js';
export { runHealthChecks, type RunHealthChecksOptions } from './runner.js';
export { formatVerdictTable } from './format-verdict.js';
export { runAttempt } from './attempt.js';
export { runCommandAttempt } from './run-command.js';
export { runHttpAttempt, MAX_BODY_BYTES } from './run-http.js';
export { runTcpAttempt } from './run-tcp.js';
export type { AttemptOutcome } from './outcome.js';
export { OUTPUT_TAIL_BYTES } from './output-tail.js';
