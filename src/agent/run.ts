// Wires the real agent together: config -> store, backend, trust, agent, MQTT link; and turns a
// reboot request or a signal into an orderly exit.
import { join } from 'node:path';
import { createBackend } from '../backends/registry.js';
import type { Config } from '../config/schema.js';
import { trustPolicy } from '../config/trust.js';
import { agentRunChecks } from '../health/agent-options.js';
import { agentLogTail, teeLogDestination } from '../health/log-tail.js';
import { startServiceNotifier } from '../health/sd-notify.js';
import { MqttLink } from '../mqtt/link.js';
import { AgentStore } from '../store/agent-store.js';
import { createLogger, type Logger } from '../util/log.js';
import { AGENT_VERSION } from '../version.js';
import { Agent } from './agent.js';
import { withFailpoints } from './failpoints.js';
import { startControlServer } from '../control/server.js';

export function databasePath(config: Config): string {
  return join(config.stateDir, 'agent.db');
}

export function controlSocketPath(config: Config): string {
  return join(config.stateDir, 'control.sock');
}

/** Runs until stopped by a signal or a simulated reboot; resolves with the process exit code. */
// The default logger also feeds agentLogTail: a failed verdict's fallback for the journal tail.
export async function runAgent(config: Config, log: Logger = createLogger(config.log.level, 'ota-agent', teeLogDestination(agentLogTail))): Promise<number> {
  const trust = trustPolicy(config);
  const store = new AgentStore(databasePath(config), { historyKeep: config.limits.historyKeep });
  const backend = withFailpoints(await createBackend(config, log));
  const agent = new Agent({
    config,
    store,
    backend,
    trust,
    log,
    agentVersion: AGENT_VERSION,
    runChecks: agentRunChecks(config),
  });
  const link = new MqttLink(config, agent.topics, store, {
    onAnnouncement: (topic, payload) => agent.handleAnnouncement(topic, payload),
    onCommand: (topic, payload) => {
      void agent.handleCommand(topic, payload).catch((e: unknown) => log.error({ err: String(e) }, 'command failed'));
    },
  }, log);
  agent.on('outbox', () => link.pump());
  agent.on('state', (s) => link.publishState(s));

  // Listening before start(): resuming an update may ask for a reboot straight away.
  const stopRequested = new Promise<number>((resolve) => {
    agent.on('reboot', (outcome) => {
      // A simulated reboot ends this process; a real one is carried out by systemd, which stops us.
      if (outcome.kind === 'exit-process') resolve(outcome.exitCode);
    });
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, 'stopping');
      resolve(0);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });

  log.info({ deviceId: config.deviceId, backend: backend.name, version: AGENT_VERSION }, 'ota-agent starting');
  await agent.start();
  log.info({ bootedSlot: agent.bootInfo.bootedSlot, runningVersion: agent.bootInfo.version }, 'booted');
  const control = await startControlServer(controlSocketPath(config), (req) => agent.handleLocalInstall(req));
  link.publishState(agent.state());
  link.start();
  // Type=notify: READY=1 now, WATCHDOG=1 every WatchdogSec/2; no-ops outside systemd.
  const notifier = await startServiceNotifier((what, err) => log.warn({ err: String(err) }, `sd_notify ${what} failed`));

  const exitCode = await stopRequested;

  await notifier.stop();
  control.close();
  await link.flush(2000);
  await agent.stop();
  await link.stop();
  await backend.close();
  store.close();
  log.info({ exitCode }, 'ota-agent stopped');
  return exitCode;
}
