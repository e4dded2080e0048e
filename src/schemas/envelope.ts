import * as z from 'zod';

export const ANNOUNCEMENT_TYPE = 'application/vnd.ota-agent.announcement+json';
export const COMMAND_TYPE = 'application/vnd.ota-agent.command+json';

/** DSSE envelope; the signature covers PAE(payloadType, payload bytes). */
export const Envelope = z
  .object({
    payloadType: z.string().min(1).max(128),
    payload: z
      .string()
      .max(1_000_000)
      .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'standard base64')
      .refine((s) => s.length % 4 === 0, 'base64 length must be a multiple of 4'),
    signatures: z
      .array(
        z
          .object({
            keyid: z.string().regex(/^[0-9a-fA-F]{64}$/, 'hex SHA-256 of the public key (DER SPKI)'),
            sig: z.string().max(200).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'standard base64'),
          })
          .strict(),
      )
      .min(1)
      .max(8),
  })
  .strict()
  .describe('DSSE envelope signed with Ed25519');
export type Envelope = z.infer<typeof Envelope>;
