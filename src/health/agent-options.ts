// The agent's health check run, configured from its config: checks, grace, deadline, journal tail
// and the MQTT settings the `mqtt-broker` check connects with. Shared by the daemon (verifying
// state, the signed `check` command) and `ota-agent check`, so all three judge the same way.
import { uptime } from 'node:os';
import type { Config } from '../config/schema.js';
import { clientOptions } from '../mqtt/link.js';
import type { HealthContext } from './context.js';
import { collectJournalTail } from './journal-tail.js';
import { agentLogTail, type LogTail } from './log-tail.js';
import { graceRemainingMs, runHealthChecks, type RunHealthChecksOptions } from './runner.js';
import { HEALTH_SETTINGS_DEFAULTS, type HealthCheckSpec, type HealthVerdict } from './schema.js';

export interface AgentHealthOptions {
  /** Fallback for the journal tail; default the process-wide agentLogTail. */
  logTail?: LogTail;
  /** Kernel uptime in seconds, for the grace period; default os.uptime(). */
  uptimeSeconds?: () => number;
  onResult?: RunHealthChecksOptions['onResult'];
}

export function healthContext(config: Config): HealthContext {
  return { mqtt: () => ({ url: config.mqtt.url, options: clientOptions(config) }) };
}

export function healthRunOptions(config: Config, opts: AgentHealthOptions = {}): RunHealthChecksOptions {
  const settings = config.health ?? HEALTH_SETTINGS_DEFAULTS;
  const logTail = opts.logTail ?? agentLogTail;
  return {
    context: healthContext(config),
    graceMs: graceRemainingMs(settings.graceSeconds, (opts.uptimeSeconds ?? uptime)()),
    deadlineMs: settings.deadlineSeconds * 1000,
    journalLines: settings.journalLines,
    collectJournal: (lines) => collectJournalTail({ lines, fallback: logTail }),
    ...(opts.onResult ? { onResult: opts.onResult } : {}),
  };
}

/** The runChecks function the agent's effects and commands call. */
export function agentRunChecks(config: Config, opts: AgentHealthOptions = {}): (specs: readonly HealthCheckSpec[], signal: AbortSignal) => Promise<HealthVerdict> {
  // Options are built per run: the grace period depends on the uptime at the moment checks start.
  return (specs, signal) => runHealthChecks(specs, { ...healthRunOptions(config, opts), signal });
}
