// Device-side rollout policy. The bucket depends only on the device id and the announcement id, so
// raising `percent` on a promoted announcement (same id) only ever adds devices, and a new
// announcement id reshuffles which devices go first.
import { createHash } from 'node:crypto';

/** A number in [0, 100) from the first 32 bits of SHA-256(deviceId + "\n" + announcementId). */
export function rolloutBucket(deviceId: string, announcementId: string): number {
  const digest = createHash('sha256').update(`${deviceId}\n${announcementId}`).digest();
  return (digest.readUInt32BE(0) / 2 ** 32) * 100;
}

export interface RolloutDecision {
  included: boolean;
  bucket: number;
  why: string;
}

export function inRollout(
  deviceId: string,
  deviceGroups: readonly string[],
  announcementId: string,
  rollout: { percent: number; groups?: string[] | undefined },
): RolloutDecision {
  const bucket = rolloutBucket(deviceId, announcementId);
  if (rollout.groups && rollout.groups.length > 0 && !rollout.groups.some((g) => deviceGroups.includes(g))) {
    return { included: false, bucket, why: `device groups [${deviceGroups.join(', ')}] not in rollout groups [${rollout.groups.join(', ')}]` };
  }
  const included = bucket < rollout.percent;
  return {
    included,
    bucket,
    why: `bucket ${bucket.toFixed(2)} ${included ? '<' : '>='} rollout ${rollout.percent}%`,
  };
}
