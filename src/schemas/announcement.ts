// The announcement: what the fleet owner signs and publishes (retained) for a compatible/channel.
import * as z from 'zod';
import { HttpUrl, IsoTime, SafeId, Sha256Hex, Version } from './common.js';

export const MaintenanceWindow = z
  .object({
    cron: z.string().min(9).max(100).describe('5-field cron expression: when the window opens (node-cron syntax)'),
    durationMinutes: z.number().int().min(1).max(10080).describe('how long the window stays open'),
    timezone: z.string().min(1).max(64).default('UTC').describe('IANA time zone of the cron expression'),
    applies: z
      .enum(['install', 'reboot'])
      .default('install')
      .describe('install: the update starts (download, install, reboot) only while the window is open; reboot: download and install at once, reboot only while the window is open'),
  })
  .strict();
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

export const Rollout = z
  .object({
    percent: z.number().min(0).max(100).describe('devices whose bucket (0..100) is below this take part'),
    groups: z.array(SafeId).max(64).optional().describe('if set, only devices in one of these groups take part'),
    window: MaintenanceWindow.optional(),
  })
  .strict();

export const RaucArtifact = z
  .object({
    url: HttpUrl,
    sha256: Sha256Hex,
    size: z.number().int().positive().max(2 ** 40).describe('bytes'),
  })
  .strict();

export const OstreeArtifact = z
  .object({
    remote: z.object({ name: SafeId, url: HttpUrl }).strict(),
    ref: z.string().regex(/^[A-Za-z0-9._/-]{1,255}$/).refine((s) => !s.split('/').includes('..'), 'no ".." segments'),
    commit: Sha256Hex.describe('OSTree commit checksum'),
  })
  .strict();

const base = {
  id: SafeId.describe('announcement id; with the device id it picks the rollout bucket'),
  sequence: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).describe('strictly increasing per channel'),
  issuedAt: IsoTime,
  expiresAt: IsoTime,
  compatible: SafeId.describe('device class; must equal the device\'s'),
  channel: SafeId,
  version: Version,
  allowDowngrade: z.boolean().default(false).describe('lets a lower version install (signed, so only the fleet owner can)'),
  description: z.string().max(1000).optional(),
  rollout: Rollout,
};

export const Announcement = z.discriminatedUnion('backend', [
  z.object({ ...base, backend: z.literal('rauc'), artifact: RaucArtifact }).strict(),
  z.object({ ...base, backend: z.literal('ostree'), artifact: OstreeArtifact }).strict(),
]);
export type Announcement = z.infer<typeof Announcement>;
export type AnnouncementInput = z.input<typeof Announcement>;
