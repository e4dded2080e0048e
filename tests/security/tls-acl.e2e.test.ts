// The transport as deployed: a real mosquitto configured from docs/mosquitto/mosquitto-tls.conf and
// docs/mosquitto/acl (mutual TLS, the certificate CN as identity, per-device topics), a PKI made with
// the openssl CLI, and simulated devices running the real agent binary (dist/; `npm run build`
// first). What it shows:
//   - a device with its own certificate connects over mqtts and completes an update the fleet
//     identity published;
//   - a device cannot write another device's topics nor an announcement, nor read another device's
//     commands (MQTT 5: PUBACK 0x87; MQTT 3.1.1: dropped silently; either way nothing arrives);
//   - without a certificate from the fleet CA, nobody gets in;
//   - the agent does not talk to a broker whose certificate does not verify.
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { startArtifactServer, type ArtifactServer } from '../../src/demo/artifact-server.js';
import { simulatedDeviceConfig } from '../../src/demo/device-config.js';
import { generateKeyPair, signAnnouncement, signCommand } from '../../src/fleet/sign.js';
import { topics } from '../../src/mqtt/topics.js';
import type { DeviceEvent } from '../../src/schemas/device-messages.js';
import { encodeSimImage } from '../../src/simulated/image.js';
import { SimulatedDevice } from '../../src/simulated/supervisor.js';
import { FLEET_IDENTITY, TestPki, type CertPair } from '../helpers/pki.js';
import { Inbox, TlsBroker, tlsOptions, tryConnect } from './tls-broker.js';

const execFileP = promisify(execFile);
const t = topics('ota/v1');
const fleetKey = generateKeyPair();
const signer = createPrivateKey(fleetKey.privateKeyPem);
let seq = Date.now();

interface Device {
  id: string;
  compatible: string;
  sim: SimulatedDevice;
  logs: string[];
  /** The agent's JSON log lines, parsed. */
  entries(): Array<Record<string, unknown>>;
}

describe('mutual TLS and the ACL from docs/mosquitto, against a real mosquitto', () => {
  let pki: TestPki;
  let broker: TlsBroker;
  let badBroker: TlsBroker | undefined;
  let artifacts: ArtifactServer;
  let dir: string;
  let fleet: MqttClient;
  let inbox: Inbox;
  const devices: Device[] = [];
  const clients: MqttClient[] = [];
  let devA: Device;

  function startDevice(id: string, brokerUrl: string, cert: CertPair): Device {
    const compatible = `gw-${randomBytes(3).toString('hex')}`;
    const ddir = join(dir, id);
    mkdirSync(ddir, { recursive: true });
    const base = simulatedDeviceConfig({ dir: ddir, deviceId: id, brokerUrl, protocolVersion: 5, publicKeyPem: fleetKey.publicKeyPem, compatible, logLevel: 'info' });
    const config: ConfigInput = {
      ...base,
      mqtt: { ...base.mqtt, url: brokerUrl, allowPlaintext: false, tls: { caFile: pki.ca.certFile, certFile: cert.certFile, keyFile: cert.keyFile } },
    };
    const configPath = join(ddir, 'agent.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const logs: string[] = [];
    const sim = new SimulatedDevice({ configPath, onOutput: (l) => logs.push(l) });
    const d: Device = {
      id,
      compatible,
      sim,
      logs,
      entries: () =>
        logs.flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    };
    devices.push(d);
    sim.start();
    return d;
  }

  const eventsOf = (id: string): DeviceEvent[] => inbox.on(t.events(id)).map((m) => JSON.parse(m.payload) as DeviceEvent);

  async function connected(url: string, opts: Parameters<typeof tryConnect>[1]): Promise<MqttClient> {
    const c = await tryConnect(url, opts);
    if (!c.ok) throw new Error(`could not connect: ${c.error}; broker log:\n${broker.output}`);
    clients.push(c.client);
    return c.client;
  }

  beforeAll(async () => {
    pki = await TestPki.create();
    broker = await TlsBroker.start({ caFile: pki.ca.certFile, server: pki.server });
    dir = mkdtempSync(join(tmpdir(), 'ota-tls-lab-'));
    mkdirSync(join(dir, 'artifacts'));
    artifacts = await startArtifactServer(join(dir, 'artifacts'));
    fleet = await connected(broker.url, { ...tlsOptions(pki.ca.certFile, pki.fleet), clientId: `fleet-${randomBytes(3).toString('hex')}` });
    inbox = new Inbox(fleet);
    await fleet.subscribeAsync({ 'ota/v1/devices/#': { qos: 1 }, 'ota/v1/announce/#': { qos: 1 } });
    devA = startDevice('dev-a', broker.url, await pki.device('dev-a'));
    await inbox
      .waitFor(() => inbox.on(t.online('dev-a')).some((m) => m.payload.includes('"online":true')) && inbox.on(t.state('dev-a')).length > 0, 20_000, 'dev-a online over mqtts')
      .catch((e: Error) => {
        throw new Error(`${e.message}; agent output:\n${devA.logs.slice(-20).join('\n')}\nbroker:\n${broker.output}`);
      });
  });

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.sim.stop()));
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await artifacts?.close();
    await badBroker?.stop();
    await broker?.stop();
    pki?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the broker identity is the certificate CN: the fleet identity is not a possible device id', () => {
    expect(pki.fleet.cn).toBe(FLEET_IDENTITY);
    expect(FLEET_IDENTITY).not.toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);
  });

  it('a device connects with its certificate over mqtts and completes an update published by the fleet identity', async () => {
    const version = '1.1.0';
    const image = encodeSimImage({ format: 'ota-sim-image/1', compatible: devA.compatible, version, files: { health: 'ok' } });
    const name = `${devA.compatible}-${version}.img`;
    writeFileSync(join(dir, 'artifacts', name), image);
    const now = Date.now();
    const id = `${devA.compatible}-${version}`;
    const { envelope } = signAnnouncement(
      {
        id,
        sequence: ++seq,
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 3600_000).toISOString(),
        compatible: devA.compatible,
        channel: 'stable',
        version,
        backend: 'rauc',
        artifact: { url: artifacts.url(name), sha256: createHash('sha256').update(image).digest('hex'), size: image.length },
        rollout: { percent: 100 },
      },
      [signer],
    );
    await fleet.publishAsync(t.announce(devA.compatible, 'stable'), JSON.stringify(envelope), { qos: 1, retain: true });
    const result = await inbox
      .waitFor(() => eventsOf('dev-a').find((e) => e.updateId === id && e.result !== undefined), 45_000, 'the update result')
      .catch((e: Error) => {
        throw new Error(`${e.message}; agent output:\n${devA.logs.slice(-30).join('\n')}`);
      });
    expect(result.result).toBe('committed');
    expect(eventsOf('dev-a').filter((e) => e.updateId === id && e.type === 'transition').map((e) => e.to)).toEqual([
      'accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed',
    ]);
    await inbox.waitFor(() => inbox.on(t.state('dev-a')).some((m) => (JSON.parse(m.payload) as { runningVersion: string; state: string }).runningVersion === version), 10_000, 'state running 1.1.0');
    // It went through a (simulated) reboot: the agent process restarted and reconnected with TLS.
    expect(devA.sim.bootCount).toBe(2);
    expect(devA.entries().filter((e) => e.msg === 'connected to broker').length).toBeGreaterThanOrEqual(2);
  });

  describe('a device cannot act for another device or for the fleet', () => {
    let probe: MqttClient;
    let probe311: MqttClient;
    const marker = () => `probe-${randomBytes(4).toString('hex')}`;

    beforeAll(async () => {
      // dev-b's certificate, used by a client that is not an agent (a compromised device).
      const b = await pki.device('dev-b');
      probe = await connected(broker.url, { ...tlsOptions(pki.ca.certFile, b), clientId: `probe-b-${randomBytes(3).toString('hex')}` });
      probe311 = await connected(broker.url, { ...tlsOptions(pki.ca.certFile, b), protocolVersion: 4, clientId: `probe-b311-${randomBytes(3).toString('hex')}` });
    });

    /**
     * Everything the broker accepted from `client` before a control message on its own events
     * topic has reached the fleet by the time the control arrives (one connection is processed in
     * order), so "not there by then" means "never delivered".
     */
    async function control(client: MqttClient): Promise<void> {
      const m = marker();
      await client.publishAsync(t.events('dev-b'), m, { qos: 1 });
      await inbox.waitFor(() => inbox.on(t.events('dev-b')).some((x) => x.payload === m), 10_000, 'the control message');
    }

    async function publishRefused(client: MqttClient, topic: string, payload: string, retain = false): Promise<number | undefined> {
      try {
        await client.publishAsync(topic, payload, { qos: 1, retain });
        return undefined;
      } catch (e) {
        return (e as { code?: number }).code;
      }
    }

    it("MQTT 5: publishing another device's state is refused with PUBACK 0x87 and nothing arrives", async () => {
      const m = marker();
      expect(await publishRefused(probe, t.state('dev-a'), JSON.stringify({ deviceId: 'dev-a', state: 'committed', m }), true)).toBe(0x87);
      expect(await publishRefused(probe, t.events('dev-a'), JSON.stringify({ deviceId: 'dev-a', type: 'transition', m }))).toBe(0x87);
      expect(await publishRefused(probe, t.online('dev-a'), JSON.stringify({ deviceId: 'dev-a', online: false, m }), true)).toBe(0x87);
      await control(probe);
      expect(inbox.messages.filter((x) => x.payload.includes(m))).toEqual([]);
    });

    it('MQTT 5: publishing an announcement or a command is refused with PUBACK 0x87; neither the fleet nor the agent sees it', async () => {
      const m = marker();
      const before = eventsOf('dev-a').length;
      expect(await publishRefused(probe, t.announce(devA.compatible, 'stable'), `{"junk":"${m}"}`, true)).toBe(0x87);
      expect(await publishRefused(probe, t.commands('dev-a'), `{"junk":"${m}"}`)).toBe(0x87);
      await control(probe);
      expect(inbox.messages.filter((x) => x.payload.includes(m))).toEqual([]);
      // Had the agent received either, it would have refused it (MALFORMED_ENVELOPE) before handling
      // this later command, whose events follow in order.
      const now = Date.now();
      const cmd = signCommand({ id: `check-${++seq}`, deviceId: 'dev-a', sequence: ++seq, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 600_000).toISOString(), command: 'check' }, [signer]);
      await fleet.publishAsync(t.commands('dev-a'), JSON.stringify(cmd.envelope), { qos: 1 });
      await inbox.waitFor(() => eventsOf('dev-a').slice(before).find((e) => e.type === 'command'), 15_000, 'the check command event');
      expect(eventsOf('dev-a').slice(before).filter((e) => e.type === 'rejected')).toEqual([]);
    });

    it('MQTT 3.1.1: the broker drops the same publishes silently (no reason code exists); nothing arrives', async () => {
      const m = marker();
      // 3.1.1 has no negative PUBACK: the publish "succeeds" from the client's view.
      expect(await publishRefused(probe311, t.state('dev-a'), `{"m":"${m}"}`, true)).toBeUndefined();
      expect(await publishRefused(probe311, t.announce(devA.compatible, 'stable'), `{"m":"${m}"}`, true)).toBeUndefined();
      await control(probe311);
      expect(inbox.messages.filter((x) => x.payload.includes(m))).toEqual([]);
    });

    it("a device does not receive another device's commands", async () => {
      const got: string[] = [];
      probe.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      // mosquitto 2.0 grants the subscription and filters on delivery; either way nothing arrives.
      await probe.subscribeAsync({ [t.commands('dev-a')]: { qos: 1 }, [t.commands('dev-b')]: { qos: 1 } });
      const other = marker();
      const own = marker();
      await fleet.publishAsync(t.commands('dev-a'), other, { qos: 1 });
      await fleet.publishAsync(t.commands('dev-b'), own, { qos: 1 });
      await inbox.waitFor(() => got.some((g) => g.includes(own)), 10_000, "dev-b's own command");
      expect(got).toEqual([`${t.commands('dev-b')} ${own}`]);
    });

    it("taking over another device's client id disconnects it (a known limitation) but yields none of its commands", async () => {
      // dev-d stands in for an agent with its default client id, ota-agent-<id>, and a persistent session.
      const sessionOpts = { clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 3600 } };
      const victim = await connected(broker.url, { ...tlsOptions(pki.ca.certFile, await pki.device('dev-d')), clientId: 'ota-agent-dev-d', ...sessionOpts });
      await victim.subscribeAsync(t.commands('dev-d'), { qos: 1 });
      const kicked = new Promise<void>((r) => victim.once('close', () => r()));
      const thief = await connected(broker.url, { ...tlsOptions(pki.ca.certFile, await pki.device('dev-e')), clientId: 'ota-agent-dev-d', ...sessionOpts });
      await kicked; // mosquitto: "already connected, closing old connection" (see docs/security.md)
      const got: string[] = [];
      thief.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      const secret = marker();
      await fleet.publishAsync(t.commands('dev-d'), secret, { qos: 1 });
      // The inherited subscription matches, but the ACL is checked on delivery, against dev-e.
      await thief.publishAsync(t.events('dev-e'), 'control', { qos: 1 });
      await inbox.waitFor(() => inbox.on(t.events('dev-e')).length > 0, 10_000, 'the control message');
      await fleet.publishAsync(t.commands('dev-e'), 'own', { qos: 1 });
      await thief.subscribeAsync(t.commands('dev-e'), { qos: 1 });
      await fleet.publishAsync(t.commands('dev-e'), 'own-after-subscribe', { qos: 1 });
      await inbox.waitFor(() => got.length > 0, 10_000, "the thief's own command");
      expect(got).toEqual([`${t.commands('dev-e')} own-after-subscribe`]);
    });
  });

  it('the mosquitto_pub command of docs/security.md publishes an envelope as the fleet identity', async () => {
    const topic = t.announce('docs-example', 'stable');
    const file = join(dir, 'envelope.json');
    const now = Date.now();
    const { envelope } = signAnnouncement(
      { id: 'docs-example-1.0.1', sequence: ++seq, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 3600_000).toISOString(), compatible: 'docs-example', channel: 'stable', version: '1.0.1', backend: 'rauc', artifact: { url: 'https://updates.example.com/x.raucb', sha256: 'a'.repeat(64), size: 1 }, rollout: { percent: 100 } },
      [signer],
    );
    writeFileSync(file, JSON.stringify(envelope));
    await execFileP('mosquitto_pub', [
      '-h', '127.0.0.1', '-p', String(broker.port), '-V', 'mqttv5',
      '--cafile', pki.ca.certFile, '--cert', pki.fleet.certFile, '--key', pki.fleet.keyFile,
      '-i', `fleet-pub-${randomBytes(3).toString('hex')}`, '-t', topic, '-q', '1', '-r', '-f', file,
    ], { timeout: 15_000 });
    const got = await inbox.waitFor(() => inbox.on(topic)[0], 10_000, 'the envelope');
    expect(JSON.parse(got.payload)).toEqual(envelope);
  });

  describe('who may connect', () => {
    it('a client without a certificate is refused during the TLS handshake', async () => {
      const r = await tryConnect(broker.url, { ...tlsOptions(pki.ca.certFile), clientId: 'no-cert' });
      if (r.ok) clients.push(r.client);
      expect(r.ok).toBe(false);
      expect(r.ok ? '' : r.error).toMatch(/certificate required|alert|closed before CONNACK|ECONNRESET/i);
    });

    it('a client certificate from an unrelated CA is refused', async () => {
      const foreign = await pki.device('dev-a', pki.otherCa);
      const r = await tryConnect(broker.url, { ...tlsOptions(pki.ca.certFile, foreign), clientId: 'foreign-ca' });
      if (r.ok) clients.push(r.client);
      expect(r.ok).toBe(false);
    });
  });

  it('the agent refuses a broker whose certificate does not verify: it logs the TLS error and never comes online', async () => {
    // Same config and ACL, but the broker presents a certificate from the unrelated CA. It would
    // accept the device's client certificate: only the agent's check of the broker stands between.
    badBroker = await TlsBroker.start({ caFile: pki.ca.certFile, server: await pki.serverCert(pki.otherCa) });
    const watcher = await connected(badBroker.url, { ...tlsOptions(pki.otherCa.certFile, pki.fleet), clientId: 'fleet-bad-broker' });
    const seen = new Inbox(watcher);
    await watcher.subscribeAsync({ 'ota/v1/devices/#': { qos: 1 } });

    const dev = startDevice('dev-c', badBroker.url, await pki.device('dev-c'));
    const tlsErrors = () => dev.entries().filter((e) => e.msg === 'mqtt error' && /certificate|verify/i.test(String(e.err)));
    // Two failed attempts: it keeps refusing on every reconnect (reconnectPeriodMs 500).
    await seen.waitFor(() => tlsErrors().length >= 2, 20_000, 'two TLS errors in the agent log').catch((e: Error) => {
      throw new Error(`${e.message}; agent output:\n${dev.logs.slice(-20).join('\n')}`);
    });
    expect(String(tlsErrors()[0]?.err)).toMatch(/unable to verify|local issuer|self.signed|certificate/i);
    expect(dev.sim.pid).toBeDefined(); // still running, still trying

    // The watcher's subscription works (it sees its own command), and nothing from dev-c came before it.
    await watcher.publishAsync(t.commands('dev-c'), 'control', { qos: 1 });
    await seen.waitFor(() => seen.on(t.commands('dev-c')).length > 0, 10_000, 'the control command');
    expect(seen.messages.filter((m) => m.topic !== t.commands('dev-c'))).toEqual([]);
    expect(seen.on(t.state('dev-c'))).toEqual([]);
    expect(dev.entries().filter((e) => e.msg === 'connected to broker')).toEqual([]);
  });
});
