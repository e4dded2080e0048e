// The MQTT side of `ota-fleet watch` (and of the simulator's observer): subscribes to the devices'
// retained state and online flag and to their events, and feeds a FleetView.
//
// With `share`, events come through an MQTT 5 shared subscription `$share/<share>/<prefix>/devices/+/events`:
// the broker hands each event to one member of the share group, so several watch/ingest
// processes split the stream. State and online stay ordinary subscriptions: they are retained
// snapshots that every watcher needs whole.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { topics } from '../mqtt/topics.js';
import { decodeAnnouncementEnvelope } from './envelope.js';
import type { FleetView } from './fleet-view.js';

export interface WatchOptions {
  url: string;
  prefix?: string;
  protocolVersion?: 4 | 5;
  /** Shared-subscription group name for the events stream. */
  share?: string;
  /** Also read retained announcements, to learn the tracked one's rollout (display only, not verified). */
  announcements?: boolean;
  clientOptions?: IClientOptions;
}

const SHARE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function watchSubscriptions(prefix: string, share?: string): Record<string, { qos: 1 }> {
  if (share !== undefined && !SHARE_NAME.test(share)) throw new Error(`share group "${share}" must be 1..64 letters, digits, ".", "_", "-"`);
  const events = `${prefix}/devices/+/events`;
  return {
    [`${prefix}/devices/+/state`]: { qos: 1 },
    [`${prefix}/devices/+/online`]: { qos: 1 },
    [share ? `$share/${share}/${events}` : events]: { qos: 1 },
  };
}

export class FleetWatch {
  private lastMessageAt = Date.now();
  private subscribedAt = 0;

  private constructor(
    private readonly client: MqttClient,
    readonly view: FleetView,
  ) {}

  get messages(): number {
    return this.view.counters.messages;
  }

  static async start(view: FleetView, opts: WatchOptions, onChange: () => void = () => undefined): Promise<FleetWatch> {
    const prefix = opts.prefix ?? 'ota/v1';
    const t = topics(prefix);
    const subs: Record<string, { qos: 1 }> = watchSubscriptions(prefix, opts.share);
    if (opts.announcements && view.announcementId) subs[`${prefix}/announce/+/+`] = { qos: 1 };
    const client = await mqtt.connectAsync(opts.url, { protocolVersion: opts.protocolVersion ?? 5, reconnectPeriod: 1000, connectTimeout: 10_000, clean: true, ...opts.clientOptions });
    const w = new FleetWatch(client, view);
    client.on('message', (topic, payload) => {
      w.lastMessageAt = Date.now();
      const dev = t.parseDevice(topic);
      let changed = false;
      if (dev) changed = view.applyMessage(dev.deviceId, dev.kind, payload);
      else if (t.parseAnnounce(topic) && payload.length > 0) {
        try {
          const a = decodeAnnouncementEnvelope(payload).announcement;
          if (a.id === view.announcementId) changed = view.setAnnouncement(a);
        } catch {
          // Not ours to judge here; devices refuse what is malformed.
        }
      }
      if (changed) onChange();
    });
    // After a reconnect mqtt.js subscribes again (clean session): the retained state arrives again
    // and the view catches up; older states and repeated events are ignored by the view.
    await client.subscribeAsync(subs);
    w.subscribedAt = Date.now();
    return w;
  }

  /**
   * Resolves once the retained messages have arrived: nothing new for `quietMs` after the
   * subscription was acknowledged (MQTT has no end-of-retained marker), or after `maxMs`.
   */
  async settled(quietMs = 300, maxMs = 10_000): Promise<void> {
    const start = Date.now();
    while (Date.now() - start < maxMs && Date.now() - Math.max(this.lastMessageAt, this.subscribedAt) < quietMs) {
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}
