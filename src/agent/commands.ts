// Signed commands for one device: rollback, check, cancel. They pass the same gate as
// announcements (size, envelope, signature, schema, validity, replay) plus "is it for me".
import { randomUUID } from 'node:crypto';
import type { BootInfo } from '../core/backend.js';
import type { RejectReason } from '../core/reasons.js';
import { checkValidity, openSigned } from '../core/signed-message.js';
import type { UpdateRecord } from '../core/update-record.js';
import type { Topics } from '../mqtt/topics.js';
import { Command } from '../schemas/command.js';
import { COMMAND_TYPE } from '../schemas/envelope.js';
import type { AgentDeps } from './agent.js';
import { CANCELLABLE_STATES } from '../core/transitions.js';
import { rejectionEvent } from './wire-events.js';

export type CommandDecision =
  | { kind: 'accept'; command: Command; message: string }
  | { kind: 'ignore'; message: string }
  | { kind: 'reject'; reason: RejectReason; message: string; command?: Command };

export interface CommandHost {
  deps: AgentDeps;
  topics: Topics;
  boot: BootInfo;
  now: () => Date;
  emitOutbox: () => void;
  /** False: over the refusal budget, the refusal is only counted (src/agent/refusal-budget.ts). */
  admitRefusal: (reason: RejectReason, topic: string) => boolean;
  startRollback: (record: UpdateRecord, message: string) => void;
  requestCancel: (record: UpdateRecord, message: string) => void;
  allowReboot: (record: UpdateRecord, message: string) => void;
}


export async function handleCommand(host: CommandHost, topic: string, raw: Uint8Array): Promise<CommandDecision> {
  const { config, store, log } = host.deps;
  const at = host.now().toISOString();
  const eventsTopic = host.topics.events(config.deviceId);
  const seqKey = `commands/${config.deviceId}`;

  const refuse = (reason: RejectReason, message: string, cmd?: Command, digest?: string): CommandDecision => {
    if (!host.admitRefusal(reason, topic)) {
      log.debug({ topic, reason }, `command refused (counted, over the refusal budget): ${message}`);
      return { kind: 'reject', reason, message };
    }
    log.warn({ topic, reason, command: cmd?.command }, `command refused: ${message}`);
    store.db.transaction(() => {
      if (digest) store.setDigest(topic, digest);
      store.recordEvent(eventsTopic, rejectionEvent(config.deviceId, at, reason, message, cmd ? { command: cmd.command, ...(cmd.updateId ? { updateId: cmd.updateId } : {}) } : undefined), {
        at, topic, subject: cmd ? `${cmd.command}:${cmd.id}` : null, decision: 'rejected', reason, message,
      });
    })();
    host.emitOutbox();
    return cmd ? { kind: 'reject', reason, message, command: cmd } : { kind: 'reject', reason, message };
  };

  const opened = openSigned(raw, COMMAND_TYPE, Command, host.deps.trust, config.limits.maxMessageBytes);
  if (store.lastDigest(topic) === opened.digest) return { kind: 'ignore', message: 'same command as already decided' };
  if (opened.kind === 'reject') return refuse(opened.reason, opened.message, undefined, opened.digest);
  const cmd = opened.payload;
  const digest = opened.digest;
  const required = host.deps.trust.commandThreshold ?? 1;
  if (opened.keyids.length < required) {
    return refuse('INSUFFICIENT_SIGNATURES', `commands need ${required} distinct trusted signatures, got ${opened.keyids.length}`, cmd, digest);
  }
  if (cmd.deviceId !== config.deviceId) return refuse('WRONG_DEVICE', `command is for device "${cmd.deviceId}"`, cmd, digest);
  const validity = checkValidity(cmd.issuedAt, cmd.expiresAt, host.now(), config.limits.clockSkewSeconds);
  if (validity) return refuse(validity.reason, validity.message, cmd, digest);
  const last = store.lastSequence(seqKey);
  if (last !== undefined && cmd.sequence <= last) return refuse('REPLAYED', `command sequence ${cmd.sequence} not above ${last}`, cmd, digest);

  const rec = store.current();
  const accept = (message: string, extra?: () => void): CommandDecision => {
    log.info({ command: cmd.command, id: cmd.id }, message);
    store.db.transaction(() => {
      store.setDigest(topic, digest);
      store.advanceSequence(seqKey, cmd.sequence);
      store.recordEvent(eventsTopic, { eventId: randomUUID(), deviceId: config.deviceId, at, type: 'command', command: cmd.command, message, ...(cmd.updateId ? { updateId: cmd.updateId } : {}) }, {
        at, topic, subject: `${cmd.command}:${cmd.id}`, decision: 'accepted', reason: null, message,
      });
      extra?.();
    })();
    host.emitOutbox();
    return { kind: 'accept', command: cmd, message };
  };

  switch (cmd.command) {
    case 'cancel': {
      if (!rec || !CANCELLABLE_STATES.includes(rec.state)) {
        return refuse('COMMAND_NOT_APPLICABLE', rec ? `update ${rec.updateId} is ${rec.state}; only ${CANCELLABLE_STATES.join('/')} updates can be cancelled` : 'no update in flight', cmd, digest);
      }
      if (cmd.updateId && cmd.updateId !== rec.updateId) return refuse('COMMAND_NOT_APPLICABLE', `update in flight is ${rec.updateId}, not ${cmd.updateId}`, cmd, digest);
      return accept(`cancelling update ${rec.updateId}`, () => host.requestCancel(rec, `cancelled by command ${cmd.id}`));
    }
    case 'rollback': {
      if (rec) return refuse('COMMAND_NOT_APPLICABLE', `update ${rec.updateId} is in flight (${rec.state}); cancel it or wait`, cmd, digest);
      const target = await host.deps.backend.rollbackTarget();
      if (!target) return refuse('COMMAND_NOT_APPLICABLE', 'no previous version to roll back to', cmd, digest);
      if (store.current()) return refuse('COMMAND_NOT_APPLICABLE', 'an update started meanwhile', cmd, digest);
      const record: UpdateRecord = {
        updateId: `rollback-${cmd.id}`,
        kind: 'rollback',
        state: 'idle',
        fromVersion: host.boot.version,
        toVersion: target.version,
        oldSlot: host.boot.bootedSlot,
        newSlot: target.slot,
        bootId: host.boot.bootId,
        transitions: 0,
        resumes: 0,
        startedAt: at,
        updatedAt: at,
      };
      const message = `rolling back from ${host.boot.version} to ${target.version} (slot ${target.slot})`;
      return accept(message, () => host.startRollback(record, message));
    }
    case 'reboot': {
      if (!rec || rec.state !== 'reboot-deferred') {
        return refuse('COMMAND_NOT_APPLICABLE', rec ? `update ${rec.updateId} is ${rec.state}; a reboot command applies to an installed update waiting for its reboot` : 'no installed update waiting for a reboot', cmd, digest);
      }
      if (cmd.updateId && cmd.updateId !== rec.updateId) return refuse('COMMAND_NOT_APPLICABLE', `update waiting is ${rec.updateId}, not ${cmd.updateId}`, cmd, digest);
      const message = `rebooting into ${rec.toVersion} by command ${cmd.id}`;
      return accept(message, () => host.allowReboot(rec, message));
    }
    case 'check': {
      const d = accept('running health checks now');
      void runCheckNow(host).catch((e: unknown) => log.error({ err: String(e) }, 'check command failed'));
      return d;
    }
  }
}

async function runCheckNow(host: CommandHost): Promise<void> {
  const { config, store } = host.deps;
  const verdict = await host.deps.runChecks(config.healthChecks, new AbortController().signal);
  const message = verdict.passed ? 'health checks passed' : `health checks failed: ${verdict.failed.join(', ')}`;
  store.recordEvent(host.topics.events(config.deviceId), {
    eventId: randomUUID(),
    deviceId: config.deviceId,
    at: host.now().toISOString(),
    type: 'check',
    command: 'check',
    message,
    checks: verdict,
  });
  store.setMeta('lastCheck', JSON.stringify(verdict));
  host.emitOutbox();
}
