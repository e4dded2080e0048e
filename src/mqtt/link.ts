// The device's MQTT connection: subscribes to announcements and its command topic, publishes the
// retained state and online flag, and drains the SQLite outbox in order, deleting an event only
// after the broker's PUBACK. Survives broker outages; never blocks the update on the broker.
import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Config } from '../config/schema.js';
import { connectMqtt } from './connect.js';
import type { DeviceState } from '../schemas/device-messages.js';
import type { AgentStore } from '../store/agent-store.js';
import type { Logger } from '../util/log.js';
import type { Topics } from './topics.js';

export interface LinkHandlers {
  onAnnouncement: (topic: string, payload: Buffer) => void;
  onCommand: (topic: string, payload: Buffer) => void;
}

const SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;

export function clientOptions(config: Config, will?: IClientOptions['will']): IClientOptions {
  const m = config.mqtt;
  const opts: IClientOptions = {
    protocolVersion: m.protocolVersion,
    clientId: m.clientId ?? `ota-agent-${config.deviceId}`,
    keepalive: m.keepaliveSeconds,
    reconnectPeriod: m.reconnectPeriodMs,
    connectTimeout: 10_000,
    // A persistent session: commands sent while the device is offline wait at the broker.
    clean: false,
    // mqtt-packet otherwise pre-builds 65,536 two-byte Buffers (one per 16-bit number) on the first
    // packet it writes: 6 MiB of the idle heap, measured with a heap snapshot (docs/performance.md).
    // Numbers are then encoded per packet, which costs nothing at the agent's message rates.
    writeCache: false,
    ...(m.protocolVersion === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_SECONDS } } : {}),
    ...(m.username !== undefined ? { username: m.username } : {}),
    ...(m.password !== undefined ? { password: m.password } : {}),
    ...(will ? { will } : {}),
  };
  if (m.tls) {
    if (m.tls.caFile) opts.ca = readFileSync(m.tls.caFile);
    if (m.tls.certFile) opts.cert = readFileSync(m.tls.certFile);
    if (m.tls.keyFile) opts.key = readFileSync(m.tls.keyFile);
    opts.rejectUnauthorized = m.tls.rejectUnauthorized;
  }
  return opts;
}

export class MqttLink {
  private client: MqttClient | null = null;
  private pumping = false;
  private dropped = 0;
  private lastDropLog = 0;
  private latestState: DeviceState | null = null;
  private publishingState = false;
  private statePending = false;

  constructor(
    private readonly config: Config,
    private readonly topics: Topics,
    private readonly store: AgentStore,
    private readonly handlers: LinkHandlers,
    private readonly log: Logger,
  ) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    const { deviceId } = this.config;
    const onlineTopic = this.topics.online(deviceId);
    const will = { topic: onlineTopic, payload: Buffer.from(JSON.stringify({ deviceId, online: false, at: new Date().toISOString() })), qos: 1 as const, retain: true };
    const client = connectMqtt(this.config.mqtt.url, clientOptions(this.config, will));
    this.client = client;
    client.on('connect', () => {
      this.log.info({ url: this.config.mqtt.url }, 'connected to broker');
      void this.onConnect(client);
    });
    client.on('reconnect', () => this.log.debug('reconnecting to broker'));
    client.on('offline', () => this.log.warn('broker offline'));
    client.on('error', (e) => this.log.warn({ err: e.message }, 'mqtt error'));
    // Only what we subscribed to: a broker can send any topic (a compromised one could hand us a
    // validly signed announcement of a channel this device does not follow, or echo our own
    // events back, each of which would be refused with a new event, without end).
    const commandTopic = this.topics.commands(deviceId);
    const announceTopics = new Set(this.config.channels.map((ch) => this.topics.announce(this.config.compatible, ch)));
    client.on('message', (topic, payload) => {
      try {
        if (topic === commandTopic) this.handlers.onCommand(topic, payload);
        else if (announceTopics.has(topic)) this.handlers.onAnnouncement(topic, payload);
        else this.dropUnsubscribed(topic, payload.length);
      } catch (e) {
        // A handler bug must not take the connection down; the message is logged and dropped.
        this.log.error({ topic, err: e instanceof Error ? e.stack : String(e) }, 'message handler failed');
      }
    });
  }

  /** Logged at most once a minute, so a flood of them cannot fill the journal. */
  private dropUnsubscribed(topic: string, bytes: number): void {
    this.dropped++;
    const now = Date.now();
    if (now - this.lastDropLog < 60_000) return;
    this.lastDropLog = now;
    this.log.warn({ topic: topic.slice(0, 200), bytes, droppedSoFar: this.dropped }, 'message on a topic this device did not subscribe to: dropped');
  }

  private async onConnect(client: MqttClient): Promise<void> {
    const { deviceId, compatible, channels } = this.config;
    try {
      await client.publishAsync(this.topics.online(deviceId), JSON.stringify({ deviceId, online: true, at: new Date().toISOString() }), { qos: 1, retain: true });
      const subs: Record<string, { qos: 1 }> = { [this.topics.commands(deviceId)]: { qos: 1 } };
      for (const ch of channels) subs[this.topics.announce(compatible, ch)] = { qos: 1 };
      await client.subscribeAsync(subs);
      if (this.latestState) this.publishState(this.latestState);
      this.pump();
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'setting up the broker session failed; will retry on reconnect');
    }
  }

  /** Retained, latest wins: only the newest state is sent, never a backlog. */
  publishState(state: DeviceState): void {
    this.latestState = state;
    if (!this.client?.connected) return;
    if (this.publishingState) {
      this.statePending = true;
      return;
    }
    this.publishingState = true;
    this.client
      .publishAsync(this.topics.state(this.config.deviceId), JSON.stringify(state), { qos: 1, retain: true })
      .catch((e: unknown) => this.log.debug({ err: String(e) }, 'state publish failed; resent on reconnect'))
      .finally(() => {
        this.publishingState = false;
        if (this.statePending && this.latestState) {
          this.statePending = false;
          this.publishState(this.latestState);
        }
      });
  }

  /** Sends outbox events one at a time, in order; each row is deleted only after its PUBACK. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void (async () => {
      try {
        while (this.client?.connected) {
          const [row] = this.store.outboxPeek(1);
          if (!row) break;
          await this.client.publishAsync(row.topic, row.payload, { qos: 1 });
          this.store.outboxAck(row.seq);
          this.log.debug({ seq: row.seq, eventId: row.eventId }, 'event delivered');
        }
      } catch (e) {
        this.log.debug({ err: String(e) }, 'outbox publish interrupted; resumes on reconnect');
      } finally {
        this.pumping = false;
        if (this.client?.connected && this.store.outboxSize() > 0) setTimeout(() => this.pump(), 500).unref();
      }
    })();
  }

  /** Waits up to `ms` for the outbox to drain (before a simulated reboot or a clean stop). */
  async flush(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && this.store.outboxSize() > 0 && this.client?.connected) {
      this.pump();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** A clean stop says "offline" itself, since the broker sends the will only on a lost connection. */
  async stop(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (!c) return;
    if (c.connected) {
      const { deviceId } = this.config;
      await c
        .publishAsync(this.topics.online(deviceId), JSON.stringify({ deviceId, online: false, at: new Date().toISOString() }), { qos: 1, retain: true })
        .catch(() => undefined);
    }
    // Not connected: end at once instead of waiting for a reconnect that may never come.
    await c.endAsync(!c.connected).catch(() => undefined);
  }
}
