// The simulated backend's "image": a small JSON document standing in for a RAUC bundle. `files`
// become the booted "rootfs" (so a health check can read them), `bootable: false` makes the
// simulated bootloader fail to start it.
import * as z from 'zod';
import { SafeId, Version } from '../schemas/common.js';

export const SIM_IMAGE_FORMAT = 'ota-sim-image/1';

export const SimImage = z
  .object({
    format: z.literal(SIM_IMAGE_FORMAT),
    compatible: SafeId,
    version: Version,
    bootable: z.boolean().default(true),
    files: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), z.string().max(16 * 1024 * 1024)).default({}),
  })
  .strict();
export type SimImage = z.infer<typeof SimImage>;

export function encodeSimImage(img: z.input<typeof SimImage>): Buffer {
  return Buffer.from(JSON.stringify(SimImage.parse(img), null, 2) + '\n', 'utf8');
}
