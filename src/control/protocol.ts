// The local control socket's messages (stateDir/control.sock, mode 0600: only the agent's user and
// root). One JSON request per connection, one JSON reply. Used by `ota-agent install`.
import * as z from 'zod';
import { Sha256Hex } from '../schemas/common.js';

export const ControlRequest = z.discriminatedUnion('cmd', [
  z
    .object({
      cmd: z.literal('install'),
      path: z.string().regex(/^\//, 'an absolute path').max(4096),
      sha256: Sha256Hex.optional(),
      allowDowngrade: z.boolean().default(false),
    })
    .strict(),
]);
export type ControlRequest = z.infer<typeof ControlRequest>;

export interface ControlReply {
  ok: boolean;
  reason?: string;
  message: string;
  updateId?: string;
}
