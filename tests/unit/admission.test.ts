// admitAnnouncement with real Ed25519 keys and real DSSE envelopes: one test per outcome, each
// asserting the exact reason code and that the message names the offending value.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { admitAnnouncement, type AdmissionContext, type AnnouncementDecision } from '../../src/core/admission.js';
import { signEnvelope, type DsseEnvelope } from '../../src/crypto/dsse.js';
import { generateKeyPair, signAnnouncement } from '../../src/fleet/sign.js';
import type { AnnouncementInput } from '../../src/schemas/announcement.js';
import { ANNOUNCEMENT_TYPE, COMMAND_TYPE } from '../../src/schemas/envelope.js';

interface TestKey {
  keyid: string;
  priv: KeyObject;
  pub: KeyObject;
}
function makeKey(): TestKey {
  const k = generateKeyPair();
  return { keyid: k.keyid, priv: createPrivateKey(k.privateKeyPem), pub: createPublicKey(k.publicKeyPem) };
}

const fleetKey = makeKey();
const secondKey = makeKey();
const outsiderKey = makeKey();
const otherOutsider = makeKey();

const TOPIC = 'ota/acme-gw/stable/announce';
const NOW = new Date('2026-03-11T00:00:00.000Z');

function announcement(over: Partial<AnnouncementInput> = {}): AnnouncementInput {
  return {
    id: 'ann-42',
    sequence: 7,
    issuedAt: '2026-03-10T10:00:00Z',
    expiresAt: '2026-03-17T10:00:00Z',
    compatible: 'acme-gw',
    channel: 'stable',
    version: '1.5.0',
    backend: 'rauc',
    artifact: { url: 'https://updates.example.com/bundles/acme-gw-1.5.0.raucb', sha256: 'a'.repeat(64), size: 123_456 },
    rollout: { percent: 100 },
    ...over,
  } as AnnouncementInput;
}

function context(over: Partial<AdmissionContext> = {}): AdmissionContext {
  return {
    deviceId: 'dev-0001',
    compatible: 'acme-gw',
    groups: ['lab'],
    backend: 'rauc',
    runningVersion: '1.4.2',
    trust: { keys: new Map([[fleetKey.keyid, fleetKey.pub], [secondKey.keyid, secondKey.pub]]), threshold: 1 },
    maxMessageBytes: 65_536,
    clockSkewSeconds: 300,
    artifactPolicy: { allowedSchemes: ['https'], allowedHosts: ['updates.example.com'] },
    now: NOW,
    inFlight: null,
    lastSequence: (key) => (key === 'acme-gw/stable' ? 6 : undefined),
    lastDigest: () => undefined,
    topic: { compatible: 'acme-gw', channel: 'stable' },
    ...over,
  };
}

const bytes = (env: unknown): Buffer => Buffer.from(JSON.stringify(env), 'utf8');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function signed(over: Partial<AnnouncementInput> = {}, keys: TestKey[] = [fleetKey]): DsseEnvelope {
  return signAnnouncement(announcement(over), keys.map((k) => k.priv)).envelope;
}

function admit(raw: Uint8Array, ctx: AdmissionContext = context()): AnnouncementDecision {
  return admitAnnouncement(raw, TOPIC, ctx);
}

function expectReject(d: AnnouncementDecision, reason: string, ...inMessage: string[]): void {
  expect(d.kind, JSON.stringify(d)).toBe('reject');
  if (d.kind !== 'reject') return;
  expect(d.reason, d.message).toBe(reason);
  for (const s of inMessage) expect(d.message).toContain(s);
}

function expectIgnore(d: AnnouncementDecision, why: string, ...inMessage: string[]): void {
  expect(d.kind, JSON.stringify(d)).toBe('ignore');
  if (d.kind !== 'ignore') return;
  expect(d.why, d.message).toBe(why);
  for (const s of inMessage) expect(d.message).toContain(s);
}

describe('baseline', () => {
  it('accepts a valid announcement and reports the rollout decision', () => {
    const raw = bytes(signed());
    const d = admit(raw);
    expect(d.kind, JSON.stringify(d)).toBe('accept');
    if (d.kind !== 'accept') return;
    expect(d.digest).toBe(sha256(raw));
    expect(d.announcement.id).toBe('ann-42');
    expect(d.announcement.version).toBe('1.5.0');
    expect(d.announcement.allowDowngrade).toBe(false); // default applied on the device
    expect(d.rollout.included).toBe(true);
    expect(d.rollout.bucket).toBeGreaterThanOrEqual(0);
    expect(d.rollout.bucket).toBeLessThan(100);
    expect(d.message).toContain('1.5.0');
    expect(d.message).toContain(d.rollout.why);
  });

  it('accepts an envelope whose extra signatures are by unknown keys', () => {
    expect(admit(bytes(signed({}, [outsiderKey, fleetKey]))).kind).toBe('accept');
  });

  it('accepts on a device with no topic binding and no sequence history', () => {
    expect(admit(bytes(signed()), context({ topic: null, lastSequence: () => undefined })).kind).toBe('accept');
  });
});

describe('size and encoding', () => {
  it('TOO_LARGE: over the byte limit, with both numbers in the message', () => {
    const raw = bytes(signed());
    expectReject(admit(raw, context({ maxMessageBytes: 200 })), 'TOO_LARGE', String(raw.byteLength), '200');
  });

  it('MALFORMED_JSON: not JSON', () => {
    const d = admit(Buffer.from('hello, device', 'utf8'));
    expectReject(d, 'MALFORMED_JSON', 'not JSON');
    expect(d.digest).toBe(sha256(Buffer.from('hello, device', 'utf8')));
  });

  it('MALFORMED_JSON: invalid UTF-8 bytes', () => {
    expectReject(admit(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 'MALFORMED_JSON', 'UTF-8');
  });
});

describe('envelope', () => {
  it('MALFORMED_ENVELOPE: missing field', () => {
    const { signatures: _signatures, ...env } = signed();
    expectReject(admit(bytes(env)), 'MALFORMED_ENVELOPE', 'signatures');
  });

  it('MALFORMED_ENVELOPE: extra field', () => {
    expectReject(admit(bytes({ ...signed(), comment: 'hi' })), 'MALFORMED_ENVELOPE', 'comment');
  });

  it('MALFORMED_ENVELOPE: payload not base64', () => {
    expectReject(admit(bytes({ ...signed(), payload: 'eyJpZCI6-_!!' })), 'MALFORMED_ENVELOPE', 'payload', 'base64');
  });

  it('MALFORMED_ENVELOPE: keyid not hex SHA-256', () => {
    const env = signed();
    const sig = env.signatures[0];
    if (!sig) throw new Error('no signature');
    expectReject(admit(bytes({ ...env, signatures: [{ ...sig, keyid: 'fleet-key-1' }] })), 'MALFORMED_ENVELOPE', 'signatures.0.keyid');
  });

  it('WRONG_PAYLOAD_TYPE: a command envelope on the announcement topic', () => {
    const env = signEnvelope(COMMAND_TYPE, Buffer.from(JSON.stringify(announcement())), [fleetKey.priv]);
    expectReject(admit(bytes(env)), 'WRONG_PAYLOAD_TYPE', COMMAND_TYPE, ANNOUNCEMENT_TYPE);
  });
});

describe('signatures', () => {
  it('UNKNOWN_KEY: signed by a key this device does not trust', () => {
    expectReject(admit(bytes(signed({}, [outsiderKey]))), 'UNKNOWN_KEY', outsiderKey.keyid.slice(0, 16));
  });

  it('UNKNOWN_KEY: no signature matches any trusted keyid', () => {
    const d = admit(bytes(signed({}, [outsiderKey, otherOutsider])));
    expectReject(d, 'UNKNOWN_KEY', outsiderKey.keyid.slice(0, 16), otherOutsider.keyid.slice(0, 16));
    expect(d.kind === 'reject' && d.message).not.toContain(fleetKey.keyid.slice(0, 16));
  });

  it('UNKNOWN_KEY: a keyid differing from a trusted one in the last hex digit does not match', () => {
    const env = signed({}, [outsiderKey]);
    const sig = env.signatures[0];
    if (!sig) throw new Error('no signature');
    const lookalike = fleetKey.keyid.slice(0, 63) + (fleetKey.keyid.endsWith('0') ? '1' : '0');
    expectReject(admit(bytes({ ...env, signatures: [{ ...sig, keyid: lookalike }] })), 'UNKNOWN_KEY');
  });

  it('an upper-case hex keyid still matches the trusted key', () => {
    const env = signed();
    const sig = env.signatures[0];
    if (!sig) throw new Error('no signature');
    expect(admit(bytes({ ...env, signatures: [{ ...sig, keyid: sig.keyid.toUpperCase() }] })).kind).toBe('accept');
  });

  it('BAD_SIGNATURE: payload changed after signing', () => {
    const env = signed();
    const tampered = { ...env, payload: Buffer.from(JSON.stringify(announcement({ version: '1.6.6' }))).toString('base64') };
    expectReject(admit(bytes(tampered)), 'BAD_SIGNATURE', fleetKey.keyid.slice(0, 16));
  });

  it('BAD_SIGNATURE: a trusted key signed other bytes', () => {
    const env = signed();
    const other = signed({ version: '9.9.9' });
    const grafted = { ...env, signatures: other.signatures };
    expectReject(admit(bytes(grafted)), 'BAD_SIGNATURE', fleetKey.keyid.slice(0, 16));
  });

  it('BAD_SIGNATURE: a trusted key id carrying a signature by another key', () => {
    const env = signed({}, [outsiderKey]);
    const sig = env.signatures[0];
    if (!sig) throw new Error('no signature');
    expectReject(admit(bytes({ ...env, signatures: [{ keyid: fleetKey.keyid, sig: sig.sig }] })), 'BAD_SIGNATURE', fleetKey.keyid.slice(0, 16));
  });

  it('threshold 2 with one trusted signature is UNKNOWN_KEY and says how many are required', () => {
    const ctx = context({ trust: { ...context().trust, threshold: 2 } });
    expectReject(admit(bytes(signed({}, [fleetKey])), ctx), 'UNKNOWN_KEY', '1 trusted signature(s)', '2 required');
  });

  it('threshold 2 is not met by the same key signing twice', () => {
    const ctx = context({ trust: { ...context().trust, threshold: 2 } });
    expectReject(admit(bytes(signed({}, [fleetKey, fleetKey])), ctx), 'UNKNOWN_KEY', '2 required');
  });

  it('threshold 2 is met by two distinct trusted keys', () => {
    const ctx = context({ trust: { ...context().trust, threshold: 2 } });
    expect(admit(bytes(signed({}, [fleetKey, secondKey])), ctx).kind).toBe('accept');
  });
});

describe('payload', () => {
  it('MALFORMED_PAYLOAD: schema violation names the field', () => {
    const env = signEnvelope(ANNOUNCEMENT_TYPE, Buffer.from(JSON.stringify({ ...announcement(), version: 'v1.5' })), [fleetKey.priv]);
    expectReject(admit(bytes(env)), 'MALFORMED_PAYLOAD', 'version');
  });

  it('MALFORMED_PAYLOAD: unknown field in the signed payload', () => {
    const env = signEnvelope(ANNOUNCEMENT_TYPE, Buffer.from(JSON.stringify({ ...announcement(), force: true })), [fleetKey.priv]);
    expectReject(admit(bytes(env)), 'MALFORMED_PAYLOAD', 'force');
  });

  it('MALFORMED_PAYLOAD: signed payload is not JSON', () => {
    const env = signEnvelope(ANNOUNCEMENT_TYPE, Buffer.from('version=1.5.0'), [fleetKey.priv]);
    expectReject(admit(bytes(env)), 'MALFORMED_PAYLOAD', 'payload not JSON');
  });

  it('MALFORMED_PAYLOAD: bad cron in the rollout window', () => {
    const d = admit(bytes(signed({ rollout: { percent: 100, window: { cron: '0 25 * * *', durationMinutes: 60 } } })));
    expectReject(d, 'MALFORMED_PAYLOAD', 'rollout.window', '0 25 * * *');
    expect(d.kind === 'reject' && d.announcement?.id).toBe('ann-42');
  });

  it('MALFORMED_PAYLOAD: unknown time zone in the rollout window', () => {
    const d = admit(bytes(signed({ rollout: { percent: 100, window: { cron: '0 2 * * *', durationMinutes: 60, timezone: 'Europe/Atlantis' } } })));
    expectReject(d, 'MALFORMED_PAYLOAD', 'Europe/Atlantis');
  });
});

describe('validity period', () => {
  it('EXPIRED: expiresAt in the past beyond the skew allowance', () => {
    const d = admit(bytes(signed({ issuedAt: '2026-03-01T00:00:00Z', expiresAt: '2026-03-10T23:00:00Z' })));
    expectReject(d, 'EXPIRED', '2026-03-10T23:00:00Z', NOW.toISOString());
  });

  it('EXPIRED: a validity window that ends before it starts, even with the device clock inside the skew allowance', () => {
    // NOW lies between the two instants only thanks to the skew allowance; the window itself is empty.
    const d = admit(bytes(signed({ issuedAt: '2026-03-11T00:01:00Z', expiresAt: '2026-03-10T23:59:00Z' })));
    expectReject(d, 'EXPIRED', 'is not after issuedAt', 'never valid');
  });

  it('NOT_YET_VALID: issuedAt in the future beyond the skew allowance', () => {
    const d = admit(bytes(signed({ issuedAt: '2026-03-11T00:10:00Z' })));
    expectReject(d, 'NOT_YET_VALID', '2026-03-11T00:10:00Z', '300s');
  });

  it('skew allowance lets a slightly-future issuedAt and a just-expired expiresAt pass', () => {
    expect(admit(bytes(signed({ issuedAt: '2026-03-11T00:02:00Z' }))).kind).toBe('accept');
    expect(admit(bytes(signed({ expiresAt: '2026-03-10T23:58:00Z' }))).kind).toBe('accept');
    expectReject(admit(bytes(signed({ issuedAt: '2026-03-11T00:02:00Z' })), context({ clockSkewSeconds: 60 })), 'NOT_YET_VALID');
  });
});

describe('addressing and ordering', () => {
  it('INCOMPATIBLE: announcement for another device class', () => {
    const d = admit(bytes(signed({ compatible: 'acme-cam' })), context({ topic: { compatible: 'acme-cam', channel: 'stable' } }));
    expectReject(d, 'INCOMPATIBLE', 'acme-cam', 'acme-gw');
  });

  it('WRONG_CHANNEL: the signed channel differs from the topic it came on', () => {
    const d = admit(bytes(signed({ channel: 'beta' })));
    expectReject(d, 'WRONG_CHANNEL', 'acme-gw/beta', 'acme-gw/stable');
  });

  it('REPLAYED: sequence equal to the last one seen', () => {
    expectReject(admit(bytes(signed({ sequence: 6 }))), 'REPLAYED', 'sequence 6', '6 already seen', 'stable');
  });

  it('REPLAYED: sequence lower than the last one seen', () => {
    expectReject(admit(bytes(signed({ sequence: 2 }))), 'REPLAYED', 'sequence 2', 'not above 6');
  });

  it('the sequence history is per channel', () => {
    const d = admit(bytes(signed({ sequence: 2 })), context({ lastSequence: (k) => (k === 'acme-gw/beta' ? 50 : undefined) }));
    expect(d.kind).toBe('accept');
  });
});

describe('backend and artifact', () => {
  it('BACKEND_MISMATCH: an OSTree announcement for a RAUC device', () => {
    const d = admit(
      bytes(
        signed({
          backend: 'ostree',
          artifact: { remote: { name: 'origin', url: 'https://updates.example.com/repo' }, ref: 'acme/gw/stable', commit: 'b'.repeat(64) },
        } as Partial<AnnouncementInput>),
      ),
    );
    expectReject(d, 'BACKEND_MISMATCH', '"ostree"', '"rauc"');
  });

  it('ARTIFACT_URL_NOT_ALLOWED: http when only https is allowed', () => {
    const d = admit(bytes(signed({ artifact: { url: 'http://updates.example.com/b.raucb', sha256: 'a'.repeat(64), size: 1 } } as Partial<AnnouncementInput>)));
    expectReject(d, 'ARTIFACT_URL_NOT_ALLOWED', 'scheme "http"', 'https');
  });

  it('ARTIFACT_URL_NOT_ALLOWED: host not in the allow-list', () => {
    const d = admit(bytes(signed({ artifact: { url: 'https://mirror.evil.example/b.raucb', sha256: 'a'.repeat(64), size: 1 } } as Partial<AnnouncementInput>)));
    expectReject(d, 'ARTIFACT_URL_NOT_ALLOWED', 'mirror.evil.example');
  });

  it('ARTIFACT_URL_NOT_ALLOWED: credentials in the URL (without echoing the password)', () => {
    const d = admit(bytes(signed({ artifact: { url: 'https://fleet:hunter2@updates.example.com/b.raucb', sha256: 'a'.repeat(64), size: 1 } } as Partial<AnnouncementInput>)));
    expectReject(d, 'ARTIFACT_URL_NOT_ALLOWED', 'credentials');
    expect(d.message).not.toContain('hunter2');
  });

  it('the OSTree remote URL is checked too', () => {
    const d = admit(
      bytes(
        signed({
          backend: 'ostree',
          artifact: { remote: { name: 'origin', url: 'http://updates.example.com/repo' }, ref: 'acme/gw/stable', commit: 'b'.repeat(64) },
        } as Partial<AnnouncementInput>),
      ),
      context({ backend: 'ostree' }),
    );
    expectReject(d, 'ARTIFACT_URL_NOT_ALLOWED', 'scheme "http"');
  });
});

describe('versions', () => {
  it('NOT_NEWER: a lower version without allowDowngrade', () => {
    expectReject(admit(bytes(signed({ version: '1.4.0' }))), 'NOT_NEWER', '1.4.0', '1.4.2');
  });

  it('a lower version is accepted when the signed announcement allows a downgrade', () => {
    const d = admit(bytes(signed({ version: '1.4.0', allowDowngrade: true })));
    expect(d.kind, JSON.stringify(d)).toBe('accept');
    if (d.kind === 'accept') expect(d.announcement.allowDowngrade).toBe(true);
  });

  it('ALREADY_INSTALLED: the running version, ignored and the sequence advanced', () => {
    const d = admit(bytes(signed({ version: '1.4.2' })));
    expectIgnore(d, 'ALREADY_INSTALLED', '1.4.2');
    expect(d.kind === 'ignore' && d.advanceSequence).toBe(true);
  });

  it('ALREADY_INSTALLED compares numerically (1.4.2.0 == 1.4.2, build ignored)', () => {
    expectIgnore(admit(bytes(signed({ version: '1.4.2.0' }))), 'ALREADY_INSTALLED', '1.4.2.0');
    expectIgnore(admit(bytes(signed({ version: '1.4.2+build9' }))), 'ALREADY_INSTALLED');
  });
});

describe('rollout', () => {
  it('NOT_IN_ROLLOUT: percent 0', () => {
    const d = admit(bytes(signed({ rollout: { percent: 0 } })));
    expectIgnore(d, 'NOT_IN_ROLLOUT', 'rollout 0%');
    expect(d.kind === 'ignore' && d.advanceSequence).toBe(true);
  });

  it('NOT_IN_ROLLOUT: device not in any rollout group', () => {
    expectIgnore(admit(bytes(signed({ rollout: { percent: 100, groups: ['canary'] } }))), 'NOT_IN_ROLLOUT', 'canary', 'lab');
  });

  it('a device in a rollout group is accepted', () => {
    expect(admit(bytes(signed({ rollout: { percent: 100, groups: ['canary', 'lab'] } }))).kind).toBe('accept');
  });
});

describe('in flight', () => {
  it('UPDATE_IN_PROGRESS: another update is in flight', () => {
    const d = admit(bytes(signed()), context({ inFlight: { updateId: 'ann-41', version: '1.4.9', state: 'downloading' } }));
    expectReject(d, 'UPDATE_IN_PROGRESS', 'ann-41', '1.4.9', 'downloading');
  });

  it('ALREADY_IN_FLIGHT: the same announcement id is in flight', () => {
    const d = admit(bytes(signed()), context({ inFlight: { updateId: 'ann-42', version: '1.5.0', state: 'verifying' } }));
    expectIgnore(d, 'ALREADY_IN_FLIGHT', 'ann-42', 'verifying');
  });
});

describe('duplicates', () => {
  it('DUPLICATE: a valid message whose digest was already decided on this topic', () => {
    const raw = bytes(signed());
    const d = admit(raw, context({ lastDigest: (t) => (t === TOPIC ? sha256(raw) : undefined) }));
    expectIgnore(d, 'DUPLICATE');
    expect(d.kind === 'ignore' && d.advanceSequence).toBe(false);
    expect(d.digest).toBe(sha256(raw));
  });

  it('DUPLICATE: a rejected message re-delivered is ignored instead of rejected again', () => {
    const raw = bytes(signed({}, [outsiderKey]));
    expectReject(admit(raw), 'UNKNOWN_KEY');
    const d = admit(raw, context({ lastDigest: (t) => (t === TOPIC ? sha256(raw) : undefined) }));
    expectIgnore(d, 'DUPLICATE');
    expect(d.kind === 'ignore' && d.advanceSequence).toBe(false);
  });

  it('DUPLICATE: an expired (valid-signature) message re-delivered is ignored', () => {
    const raw = bytes(signed({ issuedAt: '2026-03-01T00:00:00Z', expiresAt: '2026-03-02T00:00:00Z' }));
    expectIgnore(admit(raw, context({ lastDigest: () => sha256(raw) })), 'DUPLICATE');
  });

  it('a digest recorded for another topic does not make it a duplicate', () => {
    const raw = bytes(signed());
    expect(admit(raw, context({ lastDigest: (t) => (t === 'ota/acme-gw/beta/announce' ? sha256(raw) : undefined) })).kind).toBe('accept');
  });
});

describe('key revocation, per-channel signature thresholds, artifact size cap', () => {
  const trust = (extra: object) => ({ keys: new Map([[fleetKey.keyid, fleetKey.pub], [secondKey.keyid, secondKey.pub]]), threshold: 1, ...extra });

  it('REVOKED_KEY when every signature is by a revoked key, even though the key is still configured', () => {
    const d = admit(bytes(signed()), context({ trust: trust({ revoked: new Set([fleetKey.keyid]) }) }));
    expectReject(d, 'REVOKED_KEY', fleetKey.keyid.slice(0, 16));
  });

  it('a rotation: the old key revoked, the new key signs, accepted without downtime', () => {
    const d = admit(bytes(signed({}, [secondKey])), context({ trust: trust({ revoked: new Set([fleetKey.keyid]) }) }));
    expect(d.kind).toBe('accept');
  });

  it('a revoked signature next to a valid one does not count towards a threshold of 2', () => {
    const d = admit(bytes(signed({}, [fleetKey, secondKey])), context({ trust: trust({ revoked: new Set([fleetKey.keyid]), threshold: 2 }) }));
    expectReject(d, 'UNKNOWN_KEY', '1 trusted signature(s), 2 required');
  });

  it('INSUFFICIENT_SIGNATURES when the channel needs two people and one signed', () => {
    const d = admit(bytes(signed()), context({ trust: trust({ channelThresholds: { stable: 2 } }) }));
    expectReject(d, 'INSUFFICIENT_SIGNATURES', 'stable', 'needs 2', 'got 1');
  });

  it('two distinct signatures satisfy a channel threshold of 2; other channels keep the default', () => {
    expect(admit(bytes(signed({}, [fleetKey, secondKey])), context({ trust: trust({ channelThresholds: { stable: 2 } }) })).kind).toBe('accept');
    const beta = signed({ channel: 'beta' });
    expect(admit(bytes(beta), context({ trust: trust({ channelThresholds: { stable: 2 } }), topic: { compatible: 'acme-gw', channel: 'beta' }, lastSequence: () => undefined })).kind).toBe('accept');
  });

  it('ARTIFACT_TOO_LARGE above the configured cap', () => {
    const d = admit(bytes(signed()), context({ artifactPolicy: { allowedSchemes: ['https'], maxBytes: 1000 } }));
    expectReject(d, 'ARTIFACT_TOO_LARGE', '123456', '1000');
  });
});

describe('channel membership', () => {
  it('WRONG_CHANNEL for a validly signed announcement of a channel the device does not follow, whatever topic it came on', () => {
    const beta = signed({ channel: 'beta' });
    const d = admit(bytes(beta), context({ channels: ['stable'], topic: { compatible: 'acme-gw', channel: 'beta' }, lastSequence: () => undefined }));
    expectReject(d, 'WRONG_CHANNEL', 'beta', 'stable');
  });
});

describe('an update already reverted on this device', () => {
  it('PREVIOUSLY_REVERTED: a promotion of an id this device reverted is ignored, a new id is not', () => {
    const ctx = context({ previouslyReverted: (id) => id === 'ann-42' });
    expectIgnore(admit(bytes(signed()), ctx), 'PREVIOUSLY_REVERTED', 'ann-42');
    expect(admit(bytes(signed({ id: 'ann-43' })), ctx).kind).toBe('accept');
  });
});
