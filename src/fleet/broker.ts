// Short-lived MQTT connections for the fleet tools: connect, publish (QoS 1, wait for PUBACK), leave.
import mqtt, { type IClientOptions } from 'mqtt';

export async function publishOnce(url: string, topic: string, payload: string, opts: { retain: boolean; protocolVersion?: 4 | 5; clientOptions?: IClientOptions }): Promise<void> {
  const client = await mqtt.connectAsync(url, { protocolVersion: opts.protocolVersion ?? 5, reconnectPeriod: 0, connectTimeout: 10_000, ...opts.clientOptions });
  try {
    await client.publishAsync(topic, payload, { qos: 1, retain: opts.retain });
  } finally {
    await client.endAsync();
  }
}
