// Property tests (fast-check) on the in-process agent: 5,000 generated announcements and 5,000
// generated commands per run, drawn from arbitrary bytes, arbitrary JSON (proto keys and duplicate
// keys included), deep nesting, envelope-shaped objects with arbitrary fields, validly signed
// envelopes with one breaking mutation, validly signed payloads with arbitrary (schema-breaking)
// field values, and schema-valid payloads with one semantic flaw. For every message: the agent
// does not throw, the update record stays null, no lifecycle transition is emitted, and every
// refusal carries a code from REJECT_REASONS (per family, the codes that family can produce).
// A separate property generates fully valid announcements on purpose: each is accepted and
// becomes the update record.
//
// FUZZ_SEED=<n> replays a run; fast-check prints the seed and the shrunk counterexample on failure.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REJECT_REASONS, type RejectReason } from '../../src/core/reasons.js';
import { compareVersions } from '../../src/core/version.js';
import { Announcement } from '../../src/schemas/announcement.js';
import { Command } from '../../src/schemas/command.js';
import {
  ANNOUNCEMENT_TYPE,
  ARTIFACT_HOST,
  COMMAND_TYPE,
  COMMANDS,
  COMPATIBLE,
  CRITICAL,
  DEVICE_ID,
  MAX_ARTIFACT_BYTES,
  NOW,
  RUNNING_VERSION,
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
  utf8,
  type Harness,
  type TestKey,
} from './agent-harness.js';

const RUNS = 5_000;
const VALID_RUNS = 300;
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
function params<T>(numRuns: number): fc.Parameters<T> {
  return { numRuns, ...(seed !== undefined ? { seed } : {}) };
}

const ALL_REASONS = new Set<string>(REJECT_REASONS);
const ENVELOPE_GATE: RejectReason[] = ['TOO_LARGE', 'MALFORMED_JSON', 'MALFORMED_ENVELOPE', 'WRONG_PAYLOAD_TYPE', 'UNKNOWN_KEY', 'REVOKED_KEY', 'BAD_SIGNATURE'];

interface Msg {
  family: string;
  topic: string;
  bytes: Uint8Array;
  /** Reasons this family may be refused with; undefined = any code from REJECT_REASONS. */
  reasons?: readonly RejectReason[];
}

/**
 * Increasing sequence numbers for the semantic-flaw families, so that most of those messages get
 * past the replay check to the flaw they carry (ignores and accepted commands advance the mark).
 */
let sequenceCounter = 1_000_000;
const nextSequence = (): number => ++sequenceCounter;
const iso = (offsetSeconds: number): string => new Date(NOW.getTime() + offsetSeconds * 1000).toISOString();
const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'));
const b64Of = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b).toString('base64'));
const safeId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,24}$/);
const version = fc
  .tuple(fc.nat({ max: 30 }), fc.nat({ max: 30 }), fc.nat({ max: 30 }), fc.option(fc.stringMatching(/^[0-9A-Za-z]{1,6}$/), { nil: undefined }))
  .map(([a, b, c, pre]) => `${a}.${b}.${c}${pre ? `-${pre}` : ''}`);
const anyKeys = fc.constantFrom<TestKey[]>([outsiderKey], [revokedKey], [revokedKey, outsiderKey]);
/** Key names an attacker would try, JSON-escaped-safe. */
const suspiciousKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'payloadType', 'payload', 'signatures', 'keyid', 'sig', 'id', 'version', 'deviceId', 'allowDowngrade', 'toString');
/** An object as JSON text from key/value pairs: keys may repeat (duplicate keys) and include __proto__. */
const objectText = (value: fc.Arbitrary<string>) =>
  fc.array(fc.tuple(fc.oneof(suspiciousKey, fc.string({ maxLength: 12 })), value), { maxLength: 8 }).map((kv) => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`);
const jsonText = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null');

// ---- families shared by both kinds of message -------------------------------------------------

function junkFamilies(topic: string): fc.Arbitrary<Msg>[] {
  const gate = { topic, reasons: ENVELOPE_GATE };
  return [
    fc.uint8Array({ minLength: 1, maxLength: 600 }).map((bytes) => ({ family: 'bytes', bytes, ...gate })),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }).map((s) => ({ family: 'unicode', bytes: utf8(s), ...gate })),
    fc.integer({ min: 65_537, max: 80_000 }).map((n) => ({ family: 'oversized', bytes: Buffer.alloc(n, 0x7b), topic, reasons: ['TOO_LARGE'] as RejectReason[] })),
    fc.tuple(fc.integer({ min: 1, max: 30_000 }), fc.boolean()).map(([n, arr]) => ({
      family: 'deep',
      bytes: utf8(arr ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '0' + '}'.repeat(n)),
      ...gate,
    })),
    jsonText.map((s) => ({ family: 'json', bytes: utf8(s), ...gate })),
    objectText(jsonText).map((s) => ({ family: 'object', bytes: utf8(s), ...gate })),
  ];
}

/** Objects shaped like envelopes, every field arbitrary: signatures never verify. */
function envelopeShaped(topic: string, validPayload: fc.Arbitrary<string>): fc.Arbitrary<Msg> {
  const sig = fc.record(
    {
      keyid: fc.oneof(fc.constantFrom(fleetKey.keyid, secondKey.keyid, revokedKey.keyid, fleetKey.keyid.toUpperCase()), hex(32), fc.string({ maxLength: 70 })),
      sig: fc.oneof(b64Of(64, 64), b64Of(0, 80), fc.string({ maxLength: 90 })),
    },
    { requiredKeys: [] },
  );
  return fc
    .tuple(
      fc.record(
        {
          payloadType: fc.oneof(fc.constantFrom(ANNOUNCEMENT_TYPE, COMMAND_TYPE), fc.string({ maxLength: 140 }), fc.jsonValue({ maxDepth: 1 })),
          payload: fc.oneof(validPayload.map((p) => Buffer.from(p).toString('base64')), b64Of(0, 300), fc.string({ maxLength: 60 })),
          signatures: fc.oneof(fc.array(sig, { maxLength: 10 }), fc.jsonValue({ maxDepth: 2 })),
        },
        { requiredKeys: [] },
      ),
      fc.option(fc.tuple(suspiciousKey, fc.jsonValue({ maxDepth: 1 })), { nil: undefined }),
    )
    .map(([env, extra]) => {
      const text = JSON.stringify(env);
      const withExtra = extra ? `{${JSON.stringify(extra[0])}:${JSON.stringify(extra[1])}${text.length > 2 ? ',' : ''}${text.slice(1)}` : text;
      return { family: 'envelope-shaped', topic, bytes: utf8(withExtra), reasons: ENVELOPE_GATE };
    });
}

type Env = { payloadType: string; payload: string; signatures: Array<{ keyid: string; sig: string }> };

/** A validly signed envelope of `payload`, then exactly one mutation that must break it. */
function mutated(topic: string, type: string, payload: fc.Arbitrary<string>): fc.Arbitrary<Msg> {
  const mutation = fc.oneof(
    fc.nat().map((i) => (e: Env) => {
      const p = Buffer.from(e.payload, 'base64');
      if (p.length === 0) return json({ ...e, payload: 'AAAA' });
      p[i % p.length] = (p[i % p.length] as number) ^ (1 + (i % 255));
      return json({ ...e, payload: p.toString('base64') }); // BAD_SIGNATURE
    }),
    fc.nat().map((i) => (e: Env) => {
      const s = Buffer.from(e.signatures[0]?.sig ?? '', 'base64');
      s[i % 64] = (s[i % 64] as number) ^ 0x01;
      return json({ ...e, signatures: [{ keyid: e.signatures[0]?.keyid, sig: s.toString('base64') }] });
    }),
    hex(32).map((k) => (e: Env) => json({ ...e, signatures: e.signatures.map((s) => ({ ...s, keyid: k })) })), // UNKNOWN_KEY
    fc.string({ maxLength: 60 }).filter((t) => t !== type).map((t) => (e: Env) => json({ ...e, payloadType: t })),
    fc.constantFrom('payloadType', 'payload', 'signatures').map((k) => (e: Env) => {
      const copy: Record<string, unknown> = { ...e };
      delete copy[k];
      return json(copy);
    }),
    // An extra key (not one of the envelope's own: a duplicate of those would be overridden by the original).
    fc.tuple(suspiciousKey.filter((k) => !['payloadType', 'payload', 'signatures'].includes(k)), fc.jsonValue({ maxDepth: 1 })).map(([k, v]) => (e: Env) => utf8(`{${JSON.stringify(k)}:${JSON.stringify(v)},${JSON.stringify(e).slice(1)}`)),
    fc.tuple(fc.nat(), fc.constantFrom('!', '\u0000', '\u001f')).map(([i, ch]) => (e: Env) => {
      const s = JSON.stringify(e);
      const at = i % s.length;
      return utf8(s.slice(0, at) + ch + s.slice(at)); // not JSON, or a field that no longer validates
    }),
    fc.nat().map((i) => (e: Env) => {
      const b = json(e);
      return b.subarray(0, i % b.length); // truncated
    }),
    fc.nat().map((i) => (e: Env) => {
      const b = Buffer.from(json(e));
      b[i % b.length] = 0xff; // invalid UTF-8
      return b;
    }),
  );
  return fc.tuple(payload, mutation).map(([p, m]) => ({
    family: 'mutated-envelope',
    topic,
    bytes: m(JSON.parse(envelopeBytes(p, [fleetKey], type).toString('utf8')) as Env),
    reasons: ENVELOPE_GATE,
  }));
}

// ---- announcements -----------------------------------------------------------------------------

const artifactUrl = fc.stringMatching(/^[a-z0-9/._-]{1,40}$/).map((p) => `https://${ARTIFACT_HOST}/${p}`);
/** Schema-valid announcements with random content (not necessarily acceptable). */
const anyValidShape = fc
  .record({
    id: safeId,
    sequence: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    issuedAt: fc.integer({ min: -30 * 86400, max: 0 }).map(iso),
    expiresAt: fc.integer({ min: 1, max: 30 * 86400 }).map(iso),
    version,
    description: fc.option(fc.string({ maxLength: 200 }), { nil: undefined }),
    url: artifactUrl,
    sha256: hex(32),
    size: fc.integer({ min: 1, max: MAX_ARTIFACT_BYTES }),
    percent: fc.double({ min: 0, max: 100, noNaN: true }),
  })
  .map((r) =>
    announcement({
      id: r.id,
      sequence: r.sequence,
      issuedAt: r.issuedAt,
      expiresAt: r.expiresAt,
      version: r.version,
      ...(r.description !== undefined ? { description: r.description } : {}),
      artifact: { url: r.url, sha256: r.sha256, size: r.size },
      rollout: { percent: r.percent },
    }) as unknown as Record<string, unknown>,
  );

/** Versions not above the running 2.0.0. */
const notNewer = fc.oneof(
  fc.tuple(fc.nat({ max: 1 }), fc.nat({ max: 30 }), fc.nat({ max: 30 })).map(([a, b, c]) => `${a}.${b}.${c}`),
  fc.constantFrom('2.0.0', '2', '2.0', '2.0.0.0', '2.0.0-rc.1', '2.0.0+build.7'),
);

/** One semantic flaw that rules out acceptance (a refusal, or a quiet ignore). */
const announcementFlaw = fc.oneof(
  safeId.filter((c) => c !== COMPATIBLE).map((c) => (a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, compatible: c } })),
  safeId.filter((c) => c !== 'stable').map((c) => (a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, channel: c } })),
  fc.integer({ min: 301, max: 400 * 86400 }).map((s) => (a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, issuedAt: iso(-s - 86400), expiresAt: iso(-s) } })),
  fc.integer({ min: 301, max: 400 * 86400 }).map((s) => (a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, issuedAt: iso(s), expiresAt: iso(s + 86400) } })),
  notNewer.map((v) => (a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, version: v, allowDowngrade: false } })),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,20}\.example$/).map((host) => (a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, artifact: { ...(a.artifact as object), url: `https://${host}/x` } } })),
  fc.constant((a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, artifact: { ...(a.artifact as object), url: `http://${ARTIFACT_HOST}/x` } } })),
  fc.integer({ min: MAX_ARTIFACT_BYTES + 1, max: 2 ** 40 }).map((n) => (a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, artifact: { ...(a.artifact as object), size: n } } })),
  fc.constant((a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, backend: 'ostree', artifact: { remote: { name: 'os', url: `https://${ARTIFACT_HOST}/repo` }, ref: 'os/stable', commit: 'c'.repeat(64) } } })),
  fc.constant((a: Record<string, unknown>) => ({ topic: STABLE, a: { ...a, rollout: { percent: 0 } } })),
  fc.constant((a: Record<string, unknown>) => ({ topic: CRITICAL, a: { ...a, channel: 'critical' } })), // one signature on a two-signature channel
  safeId.filter((c) => c !== COMPATIBLE).map((c) => (a: Record<string, unknown>) => ({ topic: T.announce(c, 'stable'), a })),
);

const announcementFields = ['id', 'sequence', 'issuedAt', 'expiresAt', 'compatible', 'channel', 'version', 'allowDowngrade', 'description', 'backend', 'artifact', 'rollout'];
const fieldValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 40 }), fc.double(), fc.constantFrom('../../etc', '\u0000', '', -1, 2 ** 53, '__proto__'));

/** A validly signed payload where 1-3 fields carry arbitrary values, and the result does not match the schema. */
function arbitraryFields(base: fc.Arbitrary<Record<string, unknown>>, fields: string[], schema: { safeParse: (v: unknown) => { success: boolean } }): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .tuple(base, fc.uniqueArray(fc.constantFrom(...fields, 'extra', '__proto__'), { minLength: 1, maxLength: 3 }), fc.array(fieldValue, { minLength: 3, maxLength: 3 }), fc.boolean())
    .map(([obj, keys, values, drop]) => {
      const o: Record<string, unknown> = { ...obj };
      keys.forEach((k, i) => {
        if (drop && i === 0) delete o[k];
        else Object.defineProperty(o, k, { value: values[i], enumerable: true, configurable: true, writable: true });
      });
      return o;
    })
    .filter((o) => !schema.safeParse(o).success);
}

const announcementMessage: fc.Arbitrary<Msg> = fc.oneof(
  ...junkFamilies(STABLE),
  envelopeShaped(STABLE, anyValidShape.map((a) => JSON.stringify(a))),
  mutated(STABLE, ANNOUNCEMENT_TYPE, anyValidShape.map((a) => JSON.stringify(a))),
  fc.tuple(anyValidShape, anyKeys).map(([a, keys]) => ({ family: 'untrusted-signer', topic: STABLE, bytes: envelopeBytes(json(a), keys), reasons: ['UNKNOWN_KEY', 'REVOKED_KEY'] as RejectReason[] })),
  fc.tuple(anyValidShape, fc.constantFrom(COMMAND_TYPE, 'application/json', 'application/vnd.in-toto+json')).map(([a, type]) => ({
    family: 'wrong-type', topic: STABLE, bytes: envelopeBytes(json(a), [fleetKey], type), reasons: ['WRONG_PAYLOAD_TYPE'] as RejectReason[],
  })),
  arbitraryFields(anyValidShape, announcementFields, Announcement).map((a) => ({ family: 'arbitrary-fields', topic: STABLE, bytes: envelopeBytes(json(a)), reasons: ['MALFORMED_PAYLOAD'] as RejectReason[] })),
  fc.tuple(anyValidShape, announcementFlaw).map(([a, flaw]) => {
    const f = flaw({ ...a, sequence: nextSequence() });
    return { family: 'semantic-flaw', topic: f.topic, bytes: envelopeBytes(json(f.a)) };
  }),
);

// ---- commands ----------------------------------------------------------------------------------

const anyCommand = fc
  .record({
    id: safeId,
    sequence: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    issuedAt: fc.integer({ min: -3600, max: 0 }).map(iso),
    expiresAt: fc.integer({ min: 1, max: 3600 }).map(iso),
    command: fc.constantFrom('rollback', 'check', 'cancel'),
    updateId: fc.option(safeId, { nil: undefined }),
  })
  // Through JSON: an absent updateId is left out, not `undefined`.
  .map((r) => JSON.parse(JSON.stringify(command(r))) as Record<string, unknown>);

/** A flaw, or none: a valid `check` is accepted without touching the lifecycle; rollback has no target, cancel nothing to cancel. */
const commandFlaw = fc.oneof(
  fc.constant((c: Record<string, unknown>) => c),
  safeId.filter((d) => d !== DEVICE_ID).map((d) => (c: Record<string, unknown>) => ({ ...c, deviceId: d })),
  fc.integer({ min: 301, max: 400 * 86400 }).map((s) => (c: Record<string, unknown>) => ({ ...c, issuedAt: iso(-s - 3600), expiresAt: iso(-s) })),
  fc.integer({ min: 301, max: 400 * 86400 }).map((s) => (c: Record<string, unknown>) => ({ ...c, issuedAt: iso(s), expiresAt: iso(s + 3600) })),
);

const commandMessage: fc.Arbitrary<Msg> = fc.oneof(
  ...junkFamilies(COMMANDS),
  envelopeShaped(COMMANDS, anyCommand.map((c) => JSON.stringify(c))),
  mutated(COMMANDS, COMMAND_TYPE, anyCommand.map((c) => JSON.stringify(c))),
  fc.tuple(anyCommand, anyKeys).map(([c, keys]) => ({ family: 'untrusted-signer', topic: COMMANDS, bytes: envelopeBytes(json(c), keys, COMMAND_TYPE), reasons: ['UNKNOWN_KEY', 'REVOKED_KEY'] as RejectReason[] })),
  anyCommand.map((c) => ({ family: 'wrong-type', topic: COMMANDS, bytes: envelopeBytes(json(c), [fleetKey], ANNOUNCEMENT_TYPE), reasons: ['WRONG_PAYLOAD_TYPE'] as RejectReason[] })),
  arbitraryFields(anyCommand, ['id', 'deviceId', 'sequence', 'issuedAt', 'expiresAt', 'command', 'updateId'], Command).map((c) => ({
    family: 'arbitrary-fields', topic: COMMANDS, bytes: envelopeBytes(json(c), [fleetKey], COMMAND_TYPE), reasons: ['MALFORMED_PAYLOAD'] as RejectReason[],
  })),
  fc.tuple(anyCommand, commandFlaw).map(([c, flaw]) => ({ family: 'semantic-flaw', topic: COMMANDS, bytes: envelopeBytes(json(flaw({ ...c, sequence: nextSequence() })), [fleetKey], COMMAND_TYPE) })),
);

// ---- the properties ----------------------------------------------------------------------------

type Decision = { kind: 'accept' | 'ignore' | 'reject'; reason?: string } | null;

/** Checks one handled message; drains the outbox like the MQTT link would. */
function checkOutcome(h: Harness, m: Msg, d: Decision): void {
  const where = `${m.family} on ${m.topic}: ${Buffer.from(m.bytes).subarray(0, 200).toString('utf8')}`;
  expect(h.store.current(), where).toBeNull();
  if (d && d.kind === 'reject') {
    expect(ALL_REASONS.has(d.reason as string), `${d.reason} for ${where}`).toBe(true);
    if (m.reasons) expect(m.reasons, `${d.reason} for ${where}`).toContain(d.reason);
  }
  for (const row of h.store.outboxPeek(100)) {
    const e = JSON.parse(row.payload) as { type: string; reason?: string };
    expect(e.type, where).not.toBe('transition');
    if (e.type === 'rejected') expect(ALL_REASONS.has(e.reason as string), `${e.reason} for ${where}`).toBe(true);
    h.store.outboxAck(row.seq);
  }
}

describe('fuzzing the agent with generated messages', () => {
  let h: Harness;
  let slots: string;
  const seen = { announcements: new Map<string, number>(), commands: new Map<string, number>() };

  beforeAll(async () => {
    h = await harness();
    slots = h.slotsDigest();
  });
  afterAll(async () => {
    await h?.close();
  });
  // Every family is exercised (fast-check's oneof picks among them uniformly).
  const FAMILIES = ['arbitrary-fields', 'bytes', 'deep', 'envelope-shaped', 'json', 'mutated-envelope', 'object', 'oversized', 'semantic-flaw', 'unicode', 'untrusted-signer', 'wrong-type'];

  it(`${RUNS} announcements: never throws, never starts an update, every refusal has a known reason`, () => {
    fc.assert(
      fc.property(announcementMessage, (m) => {
        seen.announcements.set(m.family, (seen.announcements.get(m.family) ?? 0) + 1);
        const d = h.agent.handleAnnouncement(m.topic, m.bytes);
        checkOutcome(h, m, d);
      }),
      params(RUNS),
    );
    expect(h.slotsDigest()).toBe(slots);
    expect(h.downloads()).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect([...seen.announcements.keys()].sort()).toEqual(FAMILIES);
  });

  it(`${RUNS} commands: never throws, never starts a rollback, every refusal has a known reason`, async () => {
    await fc.assert(
      fc.asyncProperty(commandMessage, async (m) => {
        seen.commands.set(m.family, (seen.commands.get(m.family) ?? 0) + 1);
        const d = await h.agent.handleCommand(m.topic, m.bytes);
        expect(d.kind === 'accept' ? d.command.command : 'check').toBe('check'); // only check can be accepted here
        checkOutcome(h, m, d);
      }),
      params(RUNS),
    );
    await h.agent.idle();
    expect(h.store.current()).toBeNull();
    expect(h.slotsDigest()).toBe(slots);
    expect(h.downloads()).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect([...seen.commands.keys()].sort()).toEqual(FAMILIES);
  });
});

describe('fully valid announcements, generated on purpose', () => {
  const validAnnouncement = fc.record({
    id: safeId,
    version: version.filter((v) => compareVersions(v, RUNNING_VERSION) > 0),
    sequence: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    issuedAt: fc.integer({ min: -30 * 86400, max: 300 }).map(iso),
    expiresAt: fc.integer({ min: -300, max: 30 * 86400 }).map(iso),
    description: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
    url: artifactUrl,
    sha256: hex(32),
    size: fc.integer({ min: 1, max: MAX_ARTIFACT_BYTES }),
    window: fc.option(fc.constantFrom({ cron: '0 2 * * *', durationMinutes: 120 }, { cron: '*/5 * * * *', durationMinutes: 1, timezone: 'Europe/Berlin', applies: 'reboot' }), { nil: undefined }),
    critical: fc.boolean(),
    /** Extra signatures that do not count (unknown or revoked keys) are skipped. */
    extraSigners: fc.subarray([outsiderKey, revokedKey]),
    // A window that ends before it starts is never valid (refused as EXPIRED), whatever the clock.
  }).filter((r) => Date.parse(r.expiresAt) > Date.parse(r.issuedAt));

  it(`${VALID_RUNS} valid announcements: each is accepted and becomes the update record`, async () => {
    await fc.assert(
      fc.asyncProperty(validAnnouncement, async (r) => {
        const h = await harness();
        try {
          await h.agent.stop(); // records the acceptance, runs no effect (no network)
          const a = announcement({
            id: r.id,
            version: r.version,
            sequence: r.sequence,
            issuedAt: r.issuedAt,
            expiresAt: r.expiresAt,
            channel: r.critical ? 'critical' : 'stable',
            ...(r.description !== undefined ? { description: r.description } : {}),
            artifact: { url: r.url, sha256: r.sha256, size: r.size },
            rollout: { percent: 100, ...(r.window ? { window: r.window } : {}) },
          });
          const signers = [...r.extraSigners, fleetKey, ...(r.critical ? [secondKey] : [])];
          const d = h.agent.handleAnnouncement(r.critical ? CRITICAL : STABLE, envelopeBytes(json(a), signers));
          expect(d?.kind, JSON.stringify(d)).toBe('accept');
          expect(h.store.current()).toMatchObject({ updateId: r.id, toVersion: r.version, fromVersion: RUNNING_VERSION, state: 'accepted' });
          expect(h.outbox().map((e) => e.type)).toEqual(['transition']);
        } finally {
          await h.close();
        }
      }),
      params(VALID_RUNS),
    );
  });
});
