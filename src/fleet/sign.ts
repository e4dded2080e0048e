// Building and signing what the fleet owner sends. Validates with the same zod schemas the device
// uses, so a message the tool produces is one the device can accept.
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { keyIdOf, signEnvelope, type DsseEnvelope } from '../crypto/dsse.js';
import { describeZodError } from '../core/signed-message.js';
import { Announcement, type AnnouncementInput } from '../schemas/announcement.js';
import { Command } from '../schemas/command.js';
import { ANNOUNCEMENT_TYPE, COMMAND_TYPE } from '../schemas/envelope.js';
import type * as z from 'zod';

export function generateKeyPair(): { privateKeyPem: string; publicKeyPem: string; keyid: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyid: keyIdOf(publicKey),
  };
}

function validated<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`invalid ${what}: ${describeZodError(r.error)}`);
  return r.data;
}

export function signAnnouncement(input: AnnouncementInput, keys: KeyObject[]): { announcement: Announcement; envelope: DsseEnvelope } {
  const announcement = validated(Announcement, input, 'announcement');
  // Sign what was given (defaults are applied by the device the same way), byte for byte.
  const envelope = signEnvelope(ANNOUNCEMENT_TYPE, Buffer.from(JSON.stringify(input), 'utf8'), keys);
  return { announcement, envelope };
}

export function signCommand(input: z.input<typeof Command>, keys: KeyObject[]): { command: Command; envelope: DsseEnvelope } {
  const command = validated(Command, input, 'command');
  return { command, envelope: signEnvelope(COMMAND_TYPE, Buffer.from(JSON.stringify(input), 'utf8'), keys) };
}

/** sha256 and size of what a URL serves, streamed (nothing is stored). */
export async function digestUrl(url: string): Promise<{ sha256: string; size: number }> {
  const res = await fetch(url, { redirect: 'follow' });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    h.update(chunk);
    size += chunk.length;
  }
  return { sha256: h.digest('hex'), size };
}

/** sha256 and size of a local artifact, streamed (bundles can be large). */
export async function digestFile(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}
