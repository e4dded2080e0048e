// Reading back an announcement envelope the fleet published before (from a `publish --out` file or
// from the retained topic), so it can be promoted or shown. Reading is not trusting: `verifiedBy`
// says which of the given public keys signed it, and promote refuses to re-sign anything else.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { keyIdOf, verifyEnvelope, type DsseEnvelope } from '../crypto/dsse.js';
import { describeZodError } from '../core/signed-message.js';
import { Announcement, type AnnouncementInput } from '../schemas/announcement.js';
import { ANNOUNCEMENT_TYPE, Envelope } from '../schemas/envelope.js';

export interface DecodedAnnouncement {
  envelope: DsseEnvelope;
  /** The payload exactly as it was signed (defaults not applied): what promote edits and re-signs. */
  input: AnnouncementInput;
  /** The payload with defaults applied, as a device reads it. */
  announcement: Announcement;
}

export class EnvelopeError extends Error {}

/** Parses an announcement envelope; throws EnvelopeError with a precise message when it is not one. */
export function decodeAnnouncementEnvelope(raw: string | Uint8Array): DecodedAnnouncement {
  const text = typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EnvelopeError(`not JSON: ${(e as Error).message}`);
  }
  const env = Envelope.safeParse(json);
  if (!env.success) throw new EnvelopeError(`not a DSSE envelope: ${describeZodError(env.error)}`);
  if (env.data.payloadType !== ANNOUNCEMENT_TYPE) throw new EnvelopeError(`payloadType is "${env.data.payloadType}", not an announcement`);
  let input: unknown;
  try {
    input = JSON.parse(Buffer.from(env.data.payload, 'base64').toString('utf8'));
  } catch (e) {
    throw new EnvelopeError(`payload is not JSON: ${(e as Error).message}`);
  }
  const parsed = Announcement.safeParse(input);
  if (!parsed.success) throw new EnvelopeError(`payload is not a valid announcement: ${describeZodError(parsed.error)}`);
  return { envelope: env.data, input: input as AnnouncementInput, announcement: parsed.data };
}

/** keyids of `publicKeys` whose signature on the envelope verifies (empty: none of ours signed it). */
export function verifiedBy(envelope: DsseEnvelope, publicKeys: KeyObject[]): string[] {
  const trusted = new Map(publicKeys.map((k) => [keyIdOf(k), k] as const));
  const r = verifyEnvelope(envelope, Buffer.from(envelope.payload, 'base64'), trusted, 1);
  return r.ok ? r.keyids : [];
}

/** The public half of a private key (what a device trusts). */
export function publicOf(privateKey: KeyObject): KeyObject {
  return createPublicKey(privateKey);
}
