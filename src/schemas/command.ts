// Signed commands a fleet owner sends to one device.
import * as z from 'zod';
import { IsoTime, SafeId } from './common.js';

export const COMMANDS = ['rollback', 'check', 'cancel', 'reboot'] as const;

export const Command = z
  .object({
    id: SafeId,
    deviceId: SafeId.describe('the one device this command is for'),
    sequence: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).describe('strictly increasing per device'),
    issuedAt: IsoTime,
    expiresAt: IsoTime,
    command: z.enum(COMMANDS),
    updateId: SafeId.optional().describe('cancel: only if this update is the one in flight'),
  })
  .strict();
export type Command = z.infer<typeof Command>;
