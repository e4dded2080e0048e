// Promoting a rollout: the same announcement (same id, so every device keeps its bucket) with a
// wider audience, a new window or a later expiry, and a higher sequence so devices judge it afresh.
// Pure: the CLI reads the old envelope, calls this, and signs the result.
import type { AnnouncementInput, MaintenanceWindow } from '../schemas/announcement.js';

export interface PromoteChanges {
  percent?: number;
  /** New groups; an empty array removes the group restriction. */
  groups?: string[];
  /** A new window; null removes it. */
  window?: Partial<MaintenanceWindow> & { cron: string; durationMinutes: number } | null;
  /** Explicit sequence (default: max(old + 1, now in ms)). */
  sequence?: number;
  /** New expiry (default: keep the old one). */
  expiresAt?: Date;
  /** Allow a lower percentage or a narrower group list. */
  force?: boolean;
}

export class PromoteError extends Error {}

type Rollout = AnnouncementInput['rollout'];

/** True when `next` reaches fewer devices than `prev` could: a lower percent or narrower groups. */
export function narrowing(prev: Rollout, next: Rollout): string[] {
  const why: string[] = [];
  if (next.percent < prev.percent) why.push(`percent ${prev.percent} -> ${next.percent}`);
  const pg = prev.groups ?? [];
  const ng = next.groups ?? [];
  // No groups = everyone. Adding a restriction, or dropping a group from one, narrows.
  if (ng.length > 0 && (pg.length === 0 || pg.some((g) => !ng.includes(g)))) {
    why.push(`groups [${pg.join(', ') || 'all'}] -> [${ng.join(', ')}]`);
  }
  return why;
}

export function describeRollout(r: Rollout): string {
  const parts = [`${r.percent}%`];
  if (r.groups && r.groups.length > 0) parts.push(`groups ${r.groups.join(',')}`);
  if (r.window) parts.push(`window "${r.window.cron}" ${r.window.durationMinutes} min ${r.window.timezone ?? 'UTC'} (${r.window.applies ?? 'install'})`);
  return parts.join(', ');
}

/** The promoted announcement input (to be signed again), or a PromoteError saying why not. */
export function promoteAnnouncement(prev: AnnouncementInput, changes: PromoteChanges, now: Date): AnnouncementInput {
  const rollout: Rollout = { ...prev.rollout };
  if (changes.percent !== undefined) {
    if (!Number.isFinite(changes.percent) || changes.percent < 0 || changes.percent > 100) throw new PromoteError(`percent must be 0..100, not ${changes.percent}`);
    rollout.percent = changes.percent;
  }
  if (changes.groups !== undefined) {
    if (changes.groups.length > 0) rollout.groups = changes.groups;
    else delete rollout.groups;
  }
  if (changes.window !== undefined) {
    if (changes.window === null) delete rollout.window;
    else rollout.window = changes.window;
  }
  const same = JSON.stringify(rollout) === JSON.stringify(prev.rollout);
  if (same && changes.expiresAt === undefined) throw new PromoteError(`nothing to change: the rollout is already ${describeRollout(prev.rollout)} (give --percent, --groups or a window)`);
  const narrower = narrowing(prev.rollout, rollout);
  if (narrower.length > 0 && !changes.force) {
    throw new PromoteError(`this narrows the rollout (${narrower.join('; ')}); devices that already updated stay updated. Use --force if that is what you want`);
  }
  const sequence = changes.sequence ?? Math.max(prev.sequence + 1, now.getTime());
  if (!Number.isSafeInteger(sequence) || sequence <= prev.sequence) throw new PromoteError(`sequence ${sequence} must be above the current ${prev.sequence}`);
  const expiresAt = changes.expiresAt ? changes.expiresAt.toISOString() : prev.expiresAt;
  if (Date.parse(expiresAt) <= now.getTime()) throw new PromoteError(`the announcement expired at ${expiresAt}; give a new validity (--expires-in)`);
  return { ...prev, sequence, issuedAt: now.toISOString(), expiresAt, rollout } as AnnouncementInput;
}
