// The retained state message: what the device runs, what is in flight, and how the last update ended.
import type { BootInfo } from '../core/backend.js';
import type { UpdateRecord } from '../core/update-record.js';
import type { Config } from '../config/schema.js';
import type { DeviceState } from '../schemas/device-messages.js';
import type { AgentStore } from '../store/agent-store.js';

export function buildDeviceState(args: {
  config: Config;
  store: AgentStore;
  boot: BootInfo;
  backendName: string;
  agentVersion: string;
  progress: { phase: string; percent: number } | null;
  now: Date;
}): DeviceState {
  const { config, store, boot } = args;
  const rec = store.current();
  const last = store.lastOutcome();
  let lastResult: DeviceState['lastResult'] = null;
  if (last) {
    const full = JSON.parse(last.record) as Partial<UpdateRecord>;
    lastResult = {
      updateId: last.updateId,
      version: last.toVersion,
      result: last.result as NonNullable<DeviceState['lastResult']>['result'],
      message: last.message,
      at: last.finishedAt,
      ...(last.reason ? { reason: last.reason as NonNullable<DeviceState['lastResult']>['reason'] } : {}),
      ...(full.outcome?.checks ? { checks: full.outcome.checks } : {}),
    };
  }
  return {
    deviceId: config.deviceId,
    at: args.now.toISOString(),
    agentVersion: args.agentVersion,
    backend: args.backendName,
    compatible: config.compatible,
    runningVersion: boot.version,
    bootedSlot: boot.bootedSlot,
    state: rec ? rec.state : 'idle',
    update: rec
      ? {
          id: rec.updateId,
          kind: rec.kind,
          fromVersion: rec.fromVersion,
          toVersion: rec.toVersion,
          state: rec.state,
          progress: args.progress,
          startedAt: rec.startedAt,
          ...(rec.deferredUntil ? { deferredUntil: rec.deferredUntil } : {}),
        }
      : null,
    lastResult,
  };
}
