// `mqtt-broker` checks against a real mosquitto (tests/helpers/mosquitto.ts), a closed port and a
// server that accepts but never answers. The settings come in through the runner's context, as
// the agent passes its own (src/health/agent-options.ts).
import * as net from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Config } from '../../src/config/schema.js';
import { healthContext } from '../../src/health/agent-options.js';
import { PROBE_CLIENT_SUFFIX, type HealthContext } from '../../src/health/index.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { closedPort, runOne } from './helpers.js';

let broker: Mosquitto;

beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker?.stop();
});

/** The agent's own context, built from a config the way the daemon builds it. */
function contextFor(url: string, clientId = 'ota-agent-dev-1'): HealthContext {
  const config = Config.parse({
    deviceId: 'dev-1',
    compatible: 'acme-gw',
    stateDir: '/var/lib/ota-agent',
    mqtt: { url, allowPlaintext: true, clientId },
    trust: { keys: [{ publicKeyFile: '/etc/ota-agent/fleet.pub' }] },
    backend: { type: 'simulated' },
  });
  return healthContext(config);
}

const spec = (extra: Record<string, unknown> = {}) => ({ kind: 'mqtt-broker', name: 'broker', ...extra }) as const;

describe('mqtt-broker checks', () => {
  it('passes on CONNACK from a real mosquitto', async () => {
    const result = await runOne(spec({ timeoutMs: 5_000 }), { context: contextFor(broker.url) });
    expect(result).toMatchObject({ passed: true, attempts: 1, kind: 'mqtt-broker' });
    expect(result.outputTail).toBe(`CONNACK from ${broker.url} (client id ota-agent-dev-1${PROBE_CLIENT_SUFFIX})`);
  });

  it("does not take over the agent's own session", async () => {
    const agent = await mqtt.connectAsync(broker.url, { clientId: 'ota-agent-dev-2', clean: false, reconnectPeriod: 0 });
    let kicked = false;
    agent.on('close', () => (kicked = true));
    try {
      const result = await runOne(spec(), { context: contextFor(broker.url, 'ota-agent-dev-2') });
      expect(result.passed).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(kicked).toBe(false);
      expect(agent.connected).toBe(true);
    } finally {
      await agent.endAsync();
    }
  });

  it('fails on a closed port', async () => {
    const port = await closedPort();
    const result = await runOne(spec(), { context: contextFor(`mqtt://127.0.0.1:${port}`) });
    expect(result.passed).toBe(false);
    expect(result.error).toContain('ECONNREFUSED');
  });

  it('times out on a server that never sends CONNACK, on every attempt', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const started = Date.now();
      const result = await runOne(spec({ timeoutMs: 300, retries: 1, intervalMs: 0 }), { context: contextFor(`mqtt://127.0.0.1:${port}`) });
      expect(result).toMatchObject({ passed: false, attempts: 2, error: 'timed out after 300 ms waiting for CONNACK' });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(sockets).toHaveLength(2);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('retries until the broker is back', { timeout: 20_000 }, async () => {
    await broker.stopProcess();
    const restart = new Promise<void>((resolve, reject) => setTimeout(() => broker.startProcess().then(resolve, reject), 300));
    const result = await runOne(spec({ retries: 20, intervalMs: 100, timeoutMs: 1_000 }), { context: contextFor(broker.url) });
    await restart;
    expect(result.passed).toBe(true);
    expect(result.attempts).toBeGreaterThan(1);
  });

  it('fails without MQTT settings in the context, and on unusable ones', async () => {
    expect((await runOne(spec())).error).toBe('no MQTT settings given to the health check runner');
    const result = await runOne(spec(), { context: { mqtt: () => { throw new Error('ENOENT: /etc/ota-agent/ca.pem'); } } });
    expect(result.error).toBe('MQTT settings unusable: ENOENT: /etc/ota-agent/ca.pem');
  });
});
