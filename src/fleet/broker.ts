// Short-lived MQTT connections for the fleet tools: connect, publish (QoS 1, wait for PUBACK), leave;
// or connect, read what is retained on a topic, leave.
import mqtt, { type IClientOptions } from 'mqtt';

export interface BrokerOptions {
  protocolVersion?: 4 | 5;
  clientOptions?: IClientOptions;
}

function connect(url: string, opts: BrokerOptions) {
  return mqtt.connectAsync(url, { protocolVersion: opts.protocolVersion ?? 5, reconnectPeriod: 0, connectTimeout: 10_000, ...opts.clientOptions });
}

export async function publishOnce(url: string, topic: string, payload: string, opts: { retain: boolean } & BrokerOptions): Promise<void> {
  await publishMany(url, [{ topic, payload, retain: opts.retain }], opts);
}

/** Several messages over one connection, each QoS 1 and acknowledged before this resolves. */
export async function publishMany(url: string, messages: Array<{ topic: string; payload: string | Buffer; retain: boolean }>, opts: BrokerOptions = {}): Promise<void> {
  const client = await connect(url, opts);
  try {
    await Promise.all(messages.map((m) => client.publishAsync(m.topic, m.payload, { qos: 1, retain: m.retain })));
  } finally {
    await client.endAsync();
  }
}

/**
 * The retained message on `topic`, or null if there is none. The broker sends retained messages
 * right after the subscription is acknowledged; if nothing came within `waitMs` there is none.
 */
export async function readRetained(url: string, topic: string, opts: BrokerOptions & { waitMs?: number } = {}): Promise<Buffer | null> {
  const client = await connect(url, opts);
  try {
    const got = new Promise<Buffer>((resolve) => {
      client.on('message', (t, payload, packet) => {
        if (t === topic && packet.retain && payload.length > 0) resolve(payload);
      });
    });
    await client.subscribeAsync(topic, { qos: 1 });
    let timer: NodeJS.Timeout | undefined;
    const none = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), opts.waitMs ?? 1500)));
    const r = await Promise.race([got, none]);
    clearTimeout(timer);
    return r;
  } finally {
    await client.endAsync();
  }
}
