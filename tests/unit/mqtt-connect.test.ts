// connectMqtt (src/mqtt/connect.ts) builds the client on the TCP/TLS stream builders only; it must
// behave like mqtt.connect() for the URLs a device uses. Against a real mosquitto.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { connectMqtt } from '../../src/mqtt/connect.js';
import { Mosquitto } from '../helpers/mosquitto.js';

let broker: Mosquitto;
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker.stop();
});

function connected(c: MqttClient): Promise<void> {
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
}

describe('connectMqtt', () => {
  it('connects over mqtt:// and tcp://, publishes and receives, with a persistent session (MQTT 5 and 3.1.1)', async () => {
    for (const [scheme, protocolVersion] of [['mqtt', 5], ['tcp', 4]] as const) {
      const c = connectMqtt(`${scheme}://127.0.0.1:${broker.port}`, { clientId: `t-${scheme}`, clean: false, protocolVersion, reconnectPeriod: 0 });
      await connected(c);
      await c.subscribeAsync('t/echo', { qos: 1 });
      const got = new Promise<string>((r) => c.once('message', (_t, p) => r(p.toString())));
      await c.publishAsync('t/echo', `hello ${scheme}`, { qos: 1 });
      expect(await got).toBe(`hello ${scheme}`);
      await c.endAsync();
    }
  });

  it('reconnects through the same builder after the broker restarts', async () => {
    const c = connectMqtt(broker.url, { clientId: 't-re', reconnectPeriod: 200 });
    await connected(c);
    await broker.stopProcess();
    await broker.startProcess();
    await new Promise<void>((r) => c.once('connect', () => r()));
    expect(c.connected).toBe(true);
    await c.endAsync();
  });

  it('refuses an unknown scheme and an unclean session without a client id, as mqtt.connect does', () => {
    expect(() => connectMqtt('http://127.0.0.1:1', {})).toThrow(/unsupported URL scheme "http:"/);
    expect(() => connectMqtt(broker.url, { clean: false })).toThrow(/Missing clientId/);
  });

  it('mqtts:// speaks TLS: against a plain listener it fails with an error, never connects in the clear', async () => {
    const c = connectMqtt(`mqtts://127.0.0.1:${broker.port}`, { clientId: 't-tls', reconnectPeriod: 0, connectTimeout: 5000, rejectUnauthorized: true });
    let connectedInClear = false;
    c.on('connect', () => (connectedInClear = true));
    const err = await new Promise<Error>((r) => c.once('error', r));
    // mosquitto resets a connection that opens with a TLS ClientHello; OpenSSL may report it first.
    expect(err.message).toMatch(/ECONNRESET|ssl|tls|wrong version|EPROTO|socket/i);
    expect(connectedInClear).toBe(false);
    c.end(true);
  });
});
