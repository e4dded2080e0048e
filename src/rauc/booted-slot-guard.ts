// Puts the booted slot back as the next boot's choice once RAUC is idle again.
//
// Why: when the agent gives up on an install (RAUC hung past installTimeoutMs, the bus frozen),
// RAUC may still be running it. When it finishes, RAUC makes the new slot primary - and the next
// reboot would boot an update the agent reported `failed` and never checked
// (tests/faults/dbus-faults.test.ts). The clean-up after a failure therefore cannot be one call
// that may time out: it is retried in the background until RAUC answers and is idle. Anything that
// legitimately changes the primary slot (a new install, a revert, a rollback) cancels it first.
//
// RAUC can stay busy longer than the agent lives (kill -9, a crash, a restart by systemd), so the
// guard is also recorded on disk (GuardMarker, ./guard-marker.ts) from the moment it is needed until
// it is done or cancelled; the next agent on the same boot resumes it (`resume`). Stopping the agent
// (`stop`) keeps that record; only `cancel` and a finished or expired guard remove it.
export interface GuardLog {
  warn: (o: object, m: string) => void;
}

/** One attempt: 'busy' to try again later; `stillWanted` turns false when the guard was cancelled. */
export type GuardAttempt = (stillWanted: () => boolean) => Promise<'done' | 'busy'>;

/** Where the guard is recorded so that it outlives the process (GuardMarker). */
export interface GuardRecord {
  set(until: number): void;
  clear(): void;
  /** The deadline of a guard recorded on this boot, or null. */
  pending(fullTimeMs: number): number | null;
}

export class BootedSlotGuard {
  private timer: NodeJS.Timeout | null = null;
  private generation = 0;
  /** The give-up time of the guard recorded now (in memory and on disk), or null. */
  private until: number | null = null;

  constructor(
    private readonly attempt: GuardAttempt,
    private readonly log: GuardLog,
    private readonly intervalMs = 5_000,
    private readonly giveUpAfterMs = 24 * 3600_000,
    private readonly onDisk?: GuardRecord,
  ) {}

  get armed(): boolean {
    return this.timer !== null;
  }

  /**
   * Records that the booted slot must be made the next boot again, durably, before anything is
   * tried: an agent killed while a first attempt hangs on a frozen RAUC resumes it on restart.
   */
  record(): void {
    this.stopTimer();
    this.persist(Date.now() + this.giveUpAfterMs);
  }

  /** Starts retrying `attempt` every intervalMs until it is done, cancelled, or the give-up time passed. */
  arm(): void {
    this.stopTimer();
    if (this.until === null) this.persist(Date.now() + this.giveUpAfterMs);
    const gen = this.generation;
    const wanted = (): boolean => gen === this.generation;
    const deadline = this.until ?? Date.now() + this.giveUpAfterMs;
    const tick = async (): Promise<void> => {
      this.timer = null;
      if (!wanted()) return;
      try {
        if ((await this.attempt(wanted)) === 'done') {
          if (wanted()) this.forget();
          return;
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'keeping the booted slot as the next boot: RAUC still not answering');
      }
      if (!wanted()) return;
      if (Date.now() > deadline) {
        this.log.warn({}, 'gave up keeping the booted slot as the next boot: RAUC stayed busy');
        this.forget();
        return;
      }
      this.schedule(tick);
    };
    this.schedule(tick);
  }

  /**
   * Re-arms a guard an earlier agent process recorded on this boot and did not finish; false when
   * there is none. Call once, when the agent starts.
   */
  resume(): boolean {
    let until: number | null = null;
    try {
      until = this.onDisk?.pending(this.giveUpAfterMs) ?? null;
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot read the record of a pending booted-slot guard');
    }
    if (until === null) return false;
    if (Date.now() > until) {
      this.log.warn({}, 'a booted-slot guard recorded by an earlier agent has expired: RAUC stayed busy');
      this.forget();
      return false;
    }
    this.until = until;
    this.log.warn({}, 'resuming the booted-slot guard of an earlier agent: the booted slot is made the next boot again as soon as RAUC is idle');
    this.arm();
    return true;
  }

  /** The guard is no longer wanted (a new install, a revert, a rollback decides the next boot). */
  cancel(): void {
    this.stopTimer();
    this.forget();
  }

  /** The agent is stopping: the timer goes, the record stays for the next agent on this boot. */
  stop(): void {
    this.stopTimer();
  }

  private stopTimer(): void {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private persist(until: number): void {
    this.until = until;
    try {
      this.onDisk?.set(until);
    } catch (e) {
      // Still guarded in memory, as before the record existed; only a restart would lose it.
      this.log.warn({ err: (e as Error).message }, 'cannot record the booted-slot guard on disk');
    }
  }

  private forget(): void {
    this.until = null;
    try {
      this.onDisk?.clear();
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot remove the record of the booted-slot guard');
    }
  }

  private schedule(tick: () => Promise<void>): void {
    this.timer = setTimeout(() => void tick(), this.intervalMs);
    // A pending clean-up must not keep a stopping agent alive; systemd restarts it anyway.
    this.timer.unref();
  }
}
