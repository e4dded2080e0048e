// The first gate for anything arriving on MQTT: size, encoding, envelope shape, payload type and
// signature, in that order — cheap checks first, so a flood of junk costs little CPU.
import { createHash, type KeyObject } from 'node:crypto';
import * as z from 'zod';
import { verifyEnvelope } from '../crypto/dsse.js';
import { Envelope } from '../schemas/envelope.js';
import type { RejectReason } from './reasons.js';

export interface TrustPolicy {
  keys: ReadonlyMap<string, KeyObject>;
  /** Distinct trusted signatures required. */
  threshold: number;
  /** keyids whose signatures no longer count, even if the key is still configured. */
  revoked?: ReadonlySet<string>;
  /** Channels that need more signatures than `threshold` (e.g. two people for "stable"). */
  channelThresholds?: Readonly<Record<string, number>>;
  /** Signatures a command needs (config/trust.ts derives the default from the device's channels). */
  commandThreshold?: number;
}

export interface Refusal {
  kind: 'reject';
  reason: RejectReason;
  message: string;
  digest: string;
}

export type Opened<T> = { kind: 'ok'; payload: T; digest: string; keyids: string[] } | Refusal;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function digestOf(raw: Uint8Array): string {
  return createHash('sha256').update(raw).digest('hex');
}

function parseJson(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; message: string } {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { ok: false, message: 'not valid UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, message: `not JSON: ${(e as Error).message}` };
  }
}

/** One line per problem, path first: short enough for an event, precise enough to fix the message. */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

export function openSigned<T>(
  raw: Uint8Array,
  expectedType: string,
  schema: z.ZodType<T>,
  trust: TrustPolicy,
  maxBytes: number,
): Opened<T> {
  const digest = digestOf(raw);
  const refuse = (reason: RejectReason, message: string): Refusal => ({ kind: 'reject', reason, message, digest });
  if (raw.byteLength > maxBytes) return refuse('TOO_LARGE', `${raw.byteLength} bytes, limit ${maxBytes}`);

  const json = parseJson(raw);
  if (!json.ok) return refuse('MALFORMED_JSON', json.message);
  const env = Envelope.safeParse(json.value);
  if (!env.success) return refuse('MALFORMED_ENVELOPE', describeZodError(env.error));
  if (env.data.payloadType !== expectedType) {
    return refuse('WRONG_PAYLOAD_TYPE', `payloadType "${env.data.payloadType.slice(0, 80)}", expected "${expectedType}"`);
  }

  const payloadBytes = Buffer.from(env.data.payload, 'base64');
  const revoked = trust.revoked ?? new Set<string>();
  const live = revoked.size ? new Map([...trust.keys].filter(([id]) => !revoked.has(id))) : trust.keys;
  const verified = verifyEnvelope(env.data, payloadBytes, live, trust.threshold);
  if (!verified.ok) {
    const onlyRevoked = env.data.signatures.length > 0 && env.data.signatures.every((s) => revoked.has(s.keyid.toLowerCase()));
    if (onlyRevoked) return refuse('REVOKED_KEY', `signed only by revoked key(s): ${env.data.signatures.map((s) => s.keyid.slice(0, 16)).join(', ')}`);
    return refuse(verified.reason, verified.message);
  }

  const body = parseJson(payloadBytes);
  if (!body.ok) return refuse('MALFORMED_PAYLOAD', `payload ${body.message}`);
  const parsed = schema.safeParse(body.value);
  if (!parsed.success) return refuse('MALFORMED_PAYLOAD', describeZodError(parsed.error));
  return { kind: 'ok', payload: parsed.data, digest, keyids: verified.keyids };
}

/** issuedAt/expiresAt against the device clock, with an allowance for skew. */
export function checkValidity(
  issuedAt: string,
  expiresAt: string,
  now: Date,
  skewSeconds: number,
): { reason: 'EXPIRED' | 'NOT_YET_VALID'; message: string } | null {
  const skew = skewSeconds * 1000;
  // Checked before the clock: such a message is void whatever the device's time is (a signer bug or
  // a crafted window), and the skew allowance must not make it valid for a moment.
  if (Date.parse(expiresAt) <= Date.parse(issuedAt)) {
    return { reason: 'EXPIRED', message: `expiresAt ${expiresAt} is not after issuedAt ${issuedAt}: the message is never valid` };
  }
  if (Date.parse(issuedAt) > now.getTime() + skew) {
    return { reason: 'NOT_YET_VALID', message: `issued at ${issuedAt}, device time ${now.toISOString()} (skew allowance ${skewSeconds}s)` };
  }
  if (Date.parse(expiresAt) < now.getTime() - skew) {
    return { reason: 'EXPIRED', message: `expired at ${expiresAt}, device time ${now.toISOString()}` };
  }
  return null;
}
