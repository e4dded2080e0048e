// A compromised broker cannot forge a signature, but it decides what a client receives and on
// which topic. This rogue broker (tests/security/rogue-broker.ts) hands the device's MQTT link
// (src/mqtt/link.ts, in process, with the real agent behind it) messages on topics it never
// subscribed to:
//   - a validly signed announcement for a channel the device does not follow ("beta"), on that
//     channel's own topic: topic and payload agree, so only the subscription tells the device it
//     is not meant for it;
//   - the same on a malformed announcement topic, where the agent cannot compare the channel;
//   - the device's own state, events and online flag, echoed back: each would be refused as an
//     announcement, producing a new `rejected` event that is echoed back again, without end.
// The link drops anything that is not on a topic it subscribed to.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttLink } from '../../src/mqtt/link.js';
import { createLogger } from '../../src/util/log.js';
import { COMMANDS, COMPATIBLE, CRITICAL, STABLE, T, announcement, command, harness, signedAnnouncement, signedCommand, type Harness } from './agent-harness.js';
import { RogueBroker } from './rogue-broker.js';

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a broker that delivers topics the device never subscribed to', () => {
  let broker: RogueBroker;
  let h: Harness;
  let link: MqttLink;
  const logLines: string[] = [];

  beforeAll(async () => {
    broker = await RogueBroker.start({ echo: true });
    h = await harness((c) => ({ ...c, mqtt: { url: broker.url, protocolVersion: 4, allowPlaintext: true, reconnectPeriodMs: 200 } }));
    // Decisions are recorded; no effect runs (an accepted update would try to download).
    await h.agent.stop();
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        cb();
      },
    });
    // Wired as in src/agent/run.ts.
    link = new MqttLink(h.config, h.agent.topics, h.store, {
      onAnnouncement: (topic, payload) => h.agent.handleAnnouncement(topic, payload),
      onCommand: (topic, payload) => {
        void h.agent.handleCommand(topic, payload);
      },
    }, createLogger('info', 'ota-agent', sink));
    h.agent.on('outbox', () => link.pump());
    h.agent.on('state', (s) => link.publishState(s));
    link.publishState(h.agent.state());
    link.start();
    await until('the subscriptions', () => broker.subscriptions.length >= 3);
    expect([...broker.subscriptions].sort()).toEqual([COMMANDS, CRITICAL, STABLE].sort());
  });

  afterAll(async () => {
    await link?.stop();
    await h?.close();
    await broker?.close();
  });

  it('acts only on its subscribed topics: no beta update, no echo loop; the command after them is handled', async () => {
    const beta = signedAnnouncement(announcement({ id: 'acme-gw-2.1.0-beta', channel: 'beta', sequence: 5000 }));
    broker.deliver(T.announce(COMPATIBLE, 'beta'), beta);
    broker.deliver(`${STABLE}/extra`, beta);
    broker.deliver('ota/v1/announce', beta);
    broker.deliver(T.state('dev-0002'), JSON.stringify({ deviceId: 'dev-0002', state: 'idle' }));
    // Something that does produce an event: its echo would come back on the events topic.
    broker.deliver(COMMANDS, signedCommand(command({ sequence: 5001 })));
    await until('the command decision', () => h.store.decisions(50).some((d) => d.topic === COMMANDS));
    // Let echoes circulate for a while: the device keeps publishing state and events meanwhile.
    await until('the echoes of its command event', () => broker.published.filter((p) => p.topic === T.events('dev-0001')).length >= 1);
    await new Promise((r) => setTimeout(r, 300));

    expect(h.store.current()).toBeNull();
    expect(h.store.decisions(500).map((d) => [d.topic, d.decision])).toEqual([[COMMANDS, 'accepted']]);
    // Only the command's own events, once each: no refusal of echoed messages.
    const events = broker.published.filter((p) => p.topic === T.events('dev-0001')).map((p) => (JSON.parse(p.payload.toString()) as { type: string }).type);
    expect(events.filter((t) => t === 'rejected')).toEqual([]);
    expect(logLines.filter((l) => l.includes('did not subscribe')).length).toBeGreaterThanOrEqual(1);
  });
});
