// Building blocks shared by the wire messages and the config. Identifiers are restricted to a
// safe alphabet because they end up in MQTT topics, log lines and (hashed) bucket computations;
// none of them is ever used as a file path.
import * as z from 'zod';

export const SafeId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, ".", "_", "-"; starts with a letter or digit; at most 128')
  .describe('Identifier: safe in MQTT topics; never used as a file path');

export const Version = z
  .string()
  .regex(
    /^\d{1,9}(\.\d{1,9}){0,3}(-[0-9A-Za-z.-]{1,64})?(\+[0-9A-Za-z.-]{1,64})?$/,
    'a dotted numeric version such as 1.4.2, 2026.11.0 or 1.5.0-rc.1',
  )
  .describe('Dotted numeric version with optional -prerelease and +build, compared numerically');

export const IsoTime = z.iso.datetime({ offset: true }).describe('RFC 3339 timestamp');

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex SHA-256').describe('lowercase hex SHA-256');

export const HttpUrl = z
  .string()
  .max(2048)
  .refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'an absolute http(s) URL')
  .describe('absolute http(s) URL');

export const RESULTS = ['committed', 'reverted', 'failed', 'rejected', 'cancelled'] as const;
export const Result = z.enum(RESULTS);
export type Result = z.infer<typeof Result>;
