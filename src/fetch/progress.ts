export type ProgressCallback = (received: number, total: number) => void;

export interface ProgressReporter {
  /** Reports unless a report went out less than the interval ago. */
  update(received: number): void;
  /** Always reports (once) so listeners see the final count, however recent the last report. */
  finish(received: number): void;
}

export interface ProgressOptions {
  intervalMs?: number;
  now?: () => number;
}

const DEFAULT_INTERVAL_MS = 250;

export function createProgressReporter(
  callback: ProgressCallback | undefined,
  total: number,
  options: ProgressOptions = {},
): ProgressReporter {
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const now = options.now ?? Date.now;
  let lastAt = Number.NEGATIVE_INFINITY;
  let lastReported: number | undefined;

  const emit = (received: number): void => {
    lastAt = now();
    lastReported = received;
    try {
      callback?.(received, total);
    } catch {
      // A broken progress listener (UI, telemetry) must never fail an OS update download.
    }
  };

  return {
    update(received) {
      if (now() - lastAt >= intervalMs) emit(received);
    },
    finish(received) {
      if (lastReported !== received) emit(received);
    },
  };
}
