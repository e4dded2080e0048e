// Maintenance windows: a cron expression says when a window opens, a duration how long it stays
// open. Everything is computed from a `now` the caller passes, so the decision is reproducible.
import { createRequire } from 'node:module';
import type * as NodeCron from 'node-cron';
import type { MaintenanceWindow } from '../schemas/announcement.js';

// Loaded on first use: most announcements carry no window, and an idle agent need not hold it
// (docs/performance.md). Synchronous, because admission is.
let cron: typeof NodeCron | undefined;
function nodeCron(): typeof NodeCron {
  cron ??= createRequire(import.meta.url)('node-cron') as typeof NodeCron;
  return cron;
}

export interface WindowState {
  open: boolean;
  /** When open: when the current window closes. When closed: when the next one opens. */
  until: Date | null;
}

const MINUTE = 60_000;
/** How far ahead to look for the next opening; a window that never opens within it is an error. */
const HORIZON_MINUTES = 366 * 24 * 60;

export function validateWindow(w: MaintenanceWindow): string | null {
  const v = nodeCron().validateDetailed(w.cron);
  if (!v.valid) return `invalid cron "${w.cron}": ${v.errors.map((e) => e.message).join('; ')}`;
  if (w.cron.trim().split(/\s+/).length !== 5) return `cron "${w.cron}" must have 5 fields (minute hour day month weekday)`;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: w.timezone });
  } catch {
    return `unknown time zone "${w.timezone}"`;
  }
  return null;
}

export function windowState(w: MaintenanceWindow, now: Date): WindowState {
  const task = nodeCron().createTask(w.cron, () => undefined, { timezone: w.timezone });
  try {
    const start = new Date(Math.floor(now.getTime() / MINUTE) * MINUTE);
    // Open now if the cron fired within the last `durationMinutes` (inclusive of this minute).
    for (let i = 0; i < w.durationMinutes; i++) {
      const t = new Date(start.getTime() - i * MINUTE);
      if (task.match(t)) {
        const closes = new Date(t.getTime() + w.durationMinutes * MINUTE);
        if (closes > now) return { open: true, until: closes };
      }
    }
    for (let i = 1; i <= HORIZON_MINUTES; i++) {
      const t = new Date(start.getTime() + i * MINUTE);
      if (task.match(t)) return { open: false, until: t };
    }
    return { open: false, until: null };
  } finally {
    void task.destroy();
  }
}
