// Puts the booted slot back as the next boot's choice once RAUC is idle again.
//
// Why: when the agent gives up on an install (RAUC hung past installTimeoutMs, the bus frozen),
// RAUC may still be running it. When it finishes, RAUC makes the new slot primary - and the next
// reboot would boot an update the agent reported `failed` and never checked
// (tests/faults/dbus-faults.test.ts). The clean-up after a failure therefore cannot be one call
// that may time out: it is retried in the background until RAUC answers and is idle. Anything that
// legitimately changes the primary slot (a new install, a revert, a rollback) cancels it first.
export interface GuardLog {
  warn: (o: object, m: string) => void;
}

/** One attempt: 'busy' to try again later; `stillWanted` turns false when the guard was cancelled. */
export type GuardAttempt = (stillWanted: () => boolean) => Promise<'done' | 'busy'>;

export class BootedSlotGuard {
  private timer: NodeJS.Timeout | null = null;
  private generation = 0;

  constructor(
    private readonly attempt: GuardAttempt,
    private readonly log: GuardLog,
    private readonly intervalMs = 5_000,
    private readonly giveUpAfterMs = 24 * 3600_000,
  ) {}

  get armed(): boolean {
    return this.timer !== null;
  }

  /** Starts retrying `attempt` every intervalMs until it is done, cancelled, or giveUpAfterMs passed. */
  arm(): void {
    this.cancel();
    const gen = this.generation;
    const wanted = (): boolean => gen === this.generation;
    const deadline = Date.now() + this.giveUpAfterMs;
    const tick = async (): Promise<void> => {
      this.timer = null;
      if (!wanted()) return;
      try {
        if ((await this.attempt(wanted)) === 'done') return;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'keeping the booted slot as the next boot: RAUC still not answering');
      }
      if (!wanted()) return;
      if (Date.now() > deadline) {
        this.log.warn({}, 'gave up keeping the booted slot as the next boot: RAUC stayed busy');
        return;
      }
      this.schedule(tick);
    };
    this.schedule(tick);
  }

  cancel(): void {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(tick: () => Promise<void>): void {
    this.timer = setTimeout(() => void tick(), this.intervalMs);
    // A pending clean-up must not keep a stopping agent alive; systemd restarts it anyway.
    this.timer.unref();
  }
}
