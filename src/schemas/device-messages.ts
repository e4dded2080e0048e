// What a device publishes: its retained state, and one event per lifecycle step (QoS 1, via the outbox).
import * as z from 'zod';
import { HealthVerdict } from '../health/schema.js';
import { FAILURE_REASONS, REJECT_REASONS } from '../core/reasons.js';
import { STATES, EVENTS } from '../core/transitions.js';
import { IsoTime, Result, SafeId } from './common.js';

export const ReasonCode = z.enum([...REJECT_REASONS, ...FAILURE_REASONS]);
export const LifecycleState = z.enum(STATES);

export const Outcome = z
  .object({
    updateId: z.string(),
    version: z.string().optional(),
    result: Result,
    reason: ReasonCode.optional(),
    message: z.string(),
    at: IsoTime,
    checks: HealthVerdict.optional(),
  })
  .strict();

export const DeviceState = z
  .object({
    deviceId: SafeId,
    at: IsoTime,
    agentVersion: z.string(),
    backend: z.string(),
    compatible: z.string(),
    runningVersion: z.string(),
    bootedSlot: z.string().optional(),
    state: LifecycleState.describe('lifecycle state; idle when nothing is in flight'),
    update: z
      .object({
        id: z.string(),
        kind: z.enum(['update', 'rollback']),
        fromVersion: z.string(),
        toVersion: z.string(),
        state: LifecycleState,
        progress: z.object({ phase: z.string(), percent: z.number().min(0).max(100) }).strict().nullable(),
        deferredUntil: IsoTime.optional().describe('when deferred: the next maintenance window opening'),
        startedAt: IsoTime,
      })
      .strict()
      .nullable(),
    lastResult: Outcome.nullable(),
  })
  .strict();
export type DeviceState = z.infer<typeof DeviceState>;

export const DeviceEvent = z
  .object({
    eventId: z.uuid().describe('unique; consumers de-duplicate on it'),
    seq: z.number().int().min(1).describe('per-device, strictly increasing: consumers order on it'),
    deviceId: SafeId,
    at: IsoTime,
    type: z.enum(['transition', 'rejected', 'command', 'check']),
    updateId: z.string().optional(),
    version: z.string().optional(),
    fromVersion: z.string().optional(),
    from: LifecycleState.optional(),
    to: LifecycleState.optional(),
    trigger: z.enum(EVENTS).optional().describe('the lifecycle event that caused the transition'),
    result: Result.optional().describe('set when the step ends an update (or refuses a message)'),
    reason: ReasonCode.optional(),
    message: z.string().optional(),
    deferredUntil: IsoTime.optional(),
    checks: HealthVerdict.optional(),
    command: z.string().optional(),
  })
  .strict();
export type DeviceEvent = z.infer<typeof DeviceEvent>;

export const Online = z.object({ deviceId: SafeId, online: z.boolean(), at: IsoTime }).strict();
export type Online = z.infer<typeof Online>;
