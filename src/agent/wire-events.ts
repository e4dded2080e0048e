// Builds the events a device publishes from what happened. Pure, apart from the fresh event id.
import { randomUUID } from 'node:crypto';
import type { EventInput } from '../core/machine.js';
import type { RejectReason } from '../core/reasons.js';
import type { State } from '../core/transitions.js';
import type { UpdateRecord } from '../core/update-record.js';
import type { DeviceEvent } from '../schemas/device-messages.js';

export type NewEvent = Omit<DeviceEvent, 'seq'>;

export function transitionEvent(deviceId: string, next: UpdateRecord, from: State, input: EventInput): NewEvent {
  const e: NewEvent = {
    eventId: randomUUID(),
    deviceId,
    at: next.updatedAt,
    type: 'transition',
    updateId: next.updateId,
    version: next.toVersion,
    fromVersion: next.fromVersion,
    from,
    to: next.state,
    trigger: input.type,
  };
  if (next.outcome) {
    e.result = next.outcome.result;
    if (next.outcome.reason) e.reason = next.outcome.reason;
    e.message = next.outcome.message;
    if (next.outcome.checks) e.checks = next.outcome.checks;
  } else {
    if (input.reason) e.reason = input.reason;
    if (input.message) e.message = input.message;
    if (input.checks) e.checks = input.checks;
  }
  if (next.deferredUntil) e.deferredUntil = next.deferredUntil;
  return e;
}

export function rejectionEvent(deviceId: string, at: string, reason: RejectReason, message: string, subject?: { updateId?: string; version?: string; command?: string }): NewEvent {
  const e: NewEvent = { eventId: randomUUID(), deviceId, at, type: 'rejected', result: 'rejected', reason, message };
  if (subject?.updateId) e.updateId = subject.updateId;
  if (subject?.version) e.version = subject.version;
  if (subject?.command) e.command = subject.command;
  return e;
}
