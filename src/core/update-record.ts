// The persisted shape of one update in flight. It is the only state the lifecycle needs: the agent
// writes it (with the event it caused) in one SQLite transaction before running the next effect.
import type { Announcement } from '../schemas/announcement.js';
import type { Result } from '../schemas/common.js';
import type { HealthVerdict } from '../health/schema.js';
import type { FailureReason } from './reasons.js';
import type { State } from './transitions.js';

export interface Cause {
  reason: FailureReason;
  message: string;
  checks?: HealthVerdict;
}

export interface UpdateOutcome {
  result: Result;
  reason?: FailureReason;
  message: string;
  checks?: HealthVerdict;
}

export interface UpdateRecord {
  updateId: string;
  kind: 'update' | 'rollback';
  state: State;
  announcement?: Announcement;
  fromVersion: string;
  toVersion: string;
  oldSlot?: string;
  newSlot?: string;
  /** Boot id at the last transition: a different one on resume means the device rebooted since. */
  bootId: string;
  transitions: number;
  /** How often the agent restarted while in the current state (the crash-loop guard reads it). */
  resumes: number;
  startedAt: string;
  updatedAt: string;
  deferredUntil?: string;
  checks?: HealthVerdict;
  /** Why the update is on its way to reverted/failed, carried until the terminal state. */
  cause?: Cause;
  outcome?: UpdateOutcome;
}
