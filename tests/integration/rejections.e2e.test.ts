// Every refusal through the real broker: the device answers each bad announcement or command with
// a `rejected` event carrying the specific reason, and its state and slots stay exactly as they were.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signEnvelope } from '../../src/crypto/dsse.js';
import { ANNOUNCEMENT_TYPE } from '../../src/schemas/envelope.js';
import type { AnnouncementInput } from '../../src/schemas/announcement.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab, type LabDevice } from '../helpers/sim-lab.js';

describe.each([5, 4] as const)('over MQTT %s', (protocolVersion) => {
  let broker: Mosquitto;
  let lab: SimLab;
  let dev: LabDevice;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    lab = await SimLab.create(broker.url, protocolVersion);
    dev = await lab.device({ configOverride: (c) => ({ ...c, artifacts: { allowedSchemes: ['http'], allowedHosts: ['127.0.0.1'] } }) });
  });
  afterAll(async () => {
    await lab?.close();
    await broker?.stop();
  });

  const stable = () => lab.t.announce(dev.compatible, 'stable');
  const untrusted = generateKeyPairSync('ed25519').privateKey;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const now = Date.now();

  /** Publishes `payload` and returns the rejection event it caused, checking nothing else moved. */
  async function expectRejected(topic: string, payload: string | Buffer, reason: string): Promise<string> {
    const before = { slots: dev.slotsDigest(), state: lab.watcher.states.get(dev.id) };
    const n = lab.watcher.eventsOf(dev.id).length;
    await lab.publishRaw(topic, payload);
    const e = await lab.nextEvent(dev, n, (x) => x.type === 'rejected', 15_000, `rejection ${reason}`);
    expect(e.reason).toBe(reason);
    expect(e.result).toBe('rejected');
    expect(e.message?.length).toBeGreaterThan(5);
    // Nothing else happened: no transition, same slots, still idle on the same version.
    expect(lab.watcher.eventsOf(dev.id).slice(n).filter((x) => x.type === 'transition')).toEqual([]);
    expect(dev.slotsDigest()).toBe(before.slots);
    const s = lab.watcher.states.get(dev.id);
    expect(s?.state).toBe('idle');
    expect(s?.runningVersion).toBe(before.state?.runningVersion);
    return e.message ?? '';
  }

  const ann = (patch: Partial<AnnouncementInput> = {}, version = '1.1.0') => lab.announcement(dev, version, { patch });

  describe('announcements refused over the wire', () => {
    it('TOO_LARGE before parsing', async () => {
      expect(await expectRejected(stable(), 'x'.repeat(70_000), 'TOO_LARGE')).toContain('70000 bytes');
    });
    it('MALFORMED_JSON', () => expectRejected(stable(), '{"payloadType": ', 'MALFORMED_JSON'));
    it('MALFORMED_JSON for invalid UTF-8', () => expectRejected(stable(), Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'MALFORMED_JSON'));
    it('MALFORMED_ENVELOPE', () => expectRejected(stable(), JSON.stringify({ payloadType: ANNOUNCEMENT_TYPE, payload: b64('{}') }), 'MALFORMED_ENVELOPE'));
    it('WRONG_PAYLOAD_TYPE', () => expectRejected(stable(), JSON.stringify(signEnvelope('text/plain', Buffer.from(JSON.stringify(ann())), [lab.signer])), 'WRONG_PAYLOAD_TYPE'));
    it('UNKNOWN_KEY', () => expectRejected(stable(), lab.sign(ann(), [untrusted]), 'UNKNOWN_KEY'));
    it('BAD_SIGNATURE', async () => {
      const env = JSON.parse(lab.sign(ann())) as { payload: string };
      env.payload = b64(JSON.stringify({ ...ann(), version: '6.6.6' }));
      await expectRejected(stable(), JSON.stringify(env), 'BAD_SIGNATURE');
    });
    it('MALFORMED_PAYLOAD', async () => {
      const bad = { ...ann(), artifact: { url: 'not a url', sha256: 'zz', size: -1 } };
      const env = signEnvelope(ANNOUNCEMENT_TYPE, Buffer.from(JSON.stringify(bad)), [lab.signer]);
      expect(await expectRejected(stable(), JSON.stringify(env), 'MALFORMED_PAYLOAD')).toContain('artifact');
    });
    it('EXPIRED', () => expectRejected(stable(), lab.sign(ann({ issuedAt: new Date(now - 7200_000).toISOString(), expiresAt: new Date(now - 3600_000).toISOString() })), 'EXPIRED'));
    it('NOT_YET_VALID', () => expectRejected(stable(), lab.sign(ann({ issuedAt: new Date(now + 7200_000).toISOString(), expiresAt: new Date(now + 9000_000).toISOString() })), 'NOT_YET_VALID'));
    it('INCOMPATIBLE', () => expectRejected(stable(), lab.sign(ann({ compatible: 'other-board' })), 'INCOMPATIBLE'));
    it('WRONG_CHANNEL', () => expectRejected(stable(), lab.sign(ann({ channel: 'beta' })), 'WRONG_CHANNEL'));
    it('BACKEND_MISMATCH', () =>
      expectRejected(stable(), lab.sign(ann({ backend: 'ostree', artifact: { remote: { name: 'os', url: 'http://127.0.0.1/repo' }, ref: 'os/stable', commit: 'a'.repeat(64) } } as Partial<AnnouncementInput>)), 'BACKEND_MISMATCH'));
    it('ARTIFACT_URL_NOT_ALLOWED', async () => {
      const a = ann();
      (a.artifact as { url: string }).url = 'http://localhost:1/x.img';
      expect(await expectRejected(stable(), lab.sign(a), 'ARTIFACT_URL_NOT_ALLOWED')).toContain('localhost');
    });
    it('NOT_NEWER', () => expectRejected(stable(), lab.sign(ann({}, '0.9.0')), 'NOT_NEWER'));
    it('REPLAYED: an older sequence after a newer one was seen', async () => {
      // A valid announcement the device ignores (already installed) still advances the channel mark.
      const current = ann({}, '1.0.0');
      await lab.publishRaw(stable(), lab.sign(current));
      const d = await lab.waitForDecision(dev, (x) => x.subject === `${current.id}@1.0.0`);
      expect(d).toMatchObject({ decision: 'ignored', reason: 'ALREADY_INSTALLED' });
      await expectRejected(stable(), lab.sign({ ...ann(), sequence: current.sequence - 1 }), 'REPLAYED');
    });
  });

  describe('withdrawing an announcement', () => {
    it('an empty retained message is a quiet withdrawal, not a refusal', async () => {
      const n = lab.watcher.eventsOf(dev.id).length;
      await lab.publishRaw(stable(), '');
      await lab.watcher.waitFor(() => dev.logs.some((l) => l.includes('announcement withdrawn')), 10_000, 'the withdrawal log line');
      // A check command afterwards proves the device handled everything before it in order.
      await lab.command(dev, 'check');
      await lab.nextEvent(dev, n, (x) => x.type === 'check');
      expect(lab.watcher.eventsOf(dev.id).slice(n).map((e) => e.type)).toEqual(['command', 'check']);
    });
  });

  describe('commands refused over the wire', () => {
    const cmdTopic = () => lab.t.commands(dev.id);
    it('WRONG_DEVICE', () => expectRejected(cmdTopic(), lab.commandEnvelope('someone-else', 'check'), 'WRONG_DEVICE'));
    it('UNKNOWN_KEY', () => expectRejected(cmdTopic(), lab.commandEnvelope(dev.id, 'check', {}, [untrusted]), 'UNKNOWN_KEY'));
    it('COMMAND_NOT_APPLICABLE: cancel with nothing in flight', () => expectRejected(cmdTopic(), lab.commandEnvelope(dev.id, 'cancel'), 'COMMAND_NOT_APPLICABLE'));
    it('WRONG_PAYLOAD_TYPE: an announcement on the command topic', () => expectRejected(cmdTopic(), lab.sign(ann()), 'WRONG_PAYLOAD_TYPE'));
    it('EXPIRED', () => expectRejected(cmdTopic(), lab.commandEnvelope(dev.id, 'check', { issuedAt: new Date(now - 7200_000).toISOString(), expiresAt: new Date(now - 3600_000).toISOString() }), 'EXPIRED'));
    it('REPLAYED', async () => {
      const env = lab.commandEnvelope(dev.id, 'check', { id: `c-${randomBytes(2).toString('hex')}` });
      const n = lab.watcher.eventsOf(dev.id).length;
      await lab.publishRaw(cmdTopic(), env, false);
      await lab.nextEvent(dev, n, (e) => e.type === 'check');
      const older = lab.commandEnvelope(dev.id, 'check', { sequence: 1 });
      await expectRejected(cmdTopic(), older, 'REPLAYED');
    });
  });
});
