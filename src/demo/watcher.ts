// Subscribes to the devices' events and retained state, and lets a caller wait for an outcome.
// Used by the demo's timeline and by the end-to-end tests.
import mqtt, { type MqttClient } from 'mqtt';
import { topics } from '../mqtt/topics.js';
import type { DeviceEvent, DeviceState } from '../schemas/device-messages.js';

// Deadlines of waitFor stretch by OTA_WAIT_SCALE (default 1): cross-build/test-qemu-user.sh runs
// the agent as an arm64 process under qemu-user, where it starts about 10x slower.
const WAIT_SCALE = Math.max(1, Number(process.env.OTA_WAIT_SCALE) || 1);

export class FleetWatcher {
  readonly events: DeviceEvent[] = [];
  readonly states = new Map<string, DeviceState>();
  readonly online = new Map<string, boolean>();
  private listeners: Array<() => void> = [];
  private constructor(private readonly client: MqttClient) {}

  /** `persistentId` makes a persistent session, so events published while the watcher is away wait at the broker. */
  static async connect(url: string, prefix = 'ota/v1', protocolVersion: 4 | 5 = 5, onEvent?: (e: DeviceEvent) => void, persistentId?: string): Promise<FleetWatcher> {
    const client = await mqtt.connectAsync(url, {
      protocolVersion,
      reconnectPeriod: 500,
      ...(persistentId ? { clean: false, clientId: persistentId, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}) } : { clean: true }),
    });
    const w = new FleetWatcher(client);
    const t = topics(prefix);
    client.on('message', (topic, payload) => {
      const dev = t.parseDevice(topic);
      if (!dev || payload.length === 0) return;
      const body = JSON.parse(payload.toString('utf8')) as unknown;
      if (dev.kind === 'events') {
        w.events.push(body as DeviceEvent);
        onEvent?.(body as DeviceEvent);
      } else if (dev.kind === 'state') w.states.set(dev.deviceId, body as DeviceState);
      else if (dev.kind === 'online') w.online.set(dev.deviceId, (body as { online: boolean }).online);
      w.listeners.forEach((l) => l());
    });
    await client.subscribeAsync({ [`${prefix}/devices/+/events`]: { qos: 1 }, [`${prefix}/devices/+/state`]: { qos: 1 }, [`${prefix}/devices/+/online`]: { qos: 1 } });
    return w;
  }

  /** Events of one device, de-duplicated by eventId (QoS 1 may deliver twice), in seq order. */
  eventsOf(deviceId: string): DeviceEvent[] {
    const seen = new Map<string, DeviceEvent>();
    for (const e of this.events) if (e.deviceId === deviceId && !seen.has(e.eventId)) seen.set(e.eventId, e);
    return [...seen.values()].sort((a, b) => a.seq - b.seq);
  }

  async waitFor<T>(pick: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
    timeoutMs *= WAIT_SCALE;
    const first = pick();
    if (first) return first;
    return new Promise<T>((resolve, reject) => {
      // Re-checked on every message and, for conditions outside MQTT (a database, a file), on a timer.
      const poll = setInterval(() => check(), 100);
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.listeners = this.listeners.filter((l) => l !== check);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        const v = pick();
        if (v) {
          done();
          resolve(v);
        }
      };
      this.listeners.push(check);
    });
  }

  /** The event that ended update `updateId` (committed/reverted/failed/cancelled), or a rejection of it. */
  waitForResult(deviceId: string, updateId: string, timeoutMs = 30_000): Promise<DeviceEvent> {
    return this.waitFor(() => this.eventsOf(deviceId).find((e) => e.updateId === updateId && e.result !== undefined), timeoutMs, `a result for ${updateId} on ${deviceId}`);
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}
