// sd_notify(3) for a Type=notify service, without a native module: Node has no unix datagram
// sockets, so the messages go through `systemd-notify` via execFile (the unit needs
// NotifyAccess=all, since the sender is that child, not the agent). Since systemd 246,
// systemd-notify waits until the manager has processed the message (a BARRIER=1 handshake), so the
// message cannot be lost to the child exiting before systemd identified its sender.
// Everything is a no-op outside systemd (NOTIFY_SOCKET unset): the CLI, tests, the demo; there
// node:child_process is not even loaded.

export interface SdNotifyOptions {
  /** Environment to read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The systemd-notify binary; default `systemd-notify` from PATH. */
  command?: string;
  /** Limit per call; default 5000 ms. */
  timeoutMs?: number;
  /** This process's pid, compared with WATCHDOG_PID; default process.pid. */
  pid?: number;
}

/**
 * Sends `args` (e.g. ['--ready'], ['WATCHDOG=1'], ['--status=...']) via systemd-notify. Resolves
 * false without doing anything when NOTIFY_SOCKET is unset; rejects when systemd-notify fails.
 */
export function sdNotify(args: string[], opts: SdNotifyOptions = {}): Promise<boolean> {
  const env = opts.env ?? process.env;
  if (!env.NOTIFY_SOCKET) return Promise.resolve(false);
  return import('node:child_process').then(({ execFile }) => new Promise<boolean>((resolve, reject) => {
    execFile(opts.command ?? 'systemd-notify', args, { env, timeout: opts.timeoutMs ?? 5000, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`systemd-notify ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(true);
    });
  }));
}

/** Half of WatchdogSec= in ms, when systemd watches this process; null otherwise. */
export function watchdogIntervalMs(opts: SdNotifyOptions = {}): number | null {
  const env = opts.env ?? process.env;
  if (!env.NOTIFY_SOCKET || !env.WATCHDOG_USEC) return null;
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  // WATCHDOG_PID names the process the watchdog is meant for; a child that inherited it is not it.
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== (opts.pid ?? process.pid)) return null;
  return Math.max(1, Math.floor(usec / 2 / 1000));
}

export interface ServiceNotifier {
  /** Stops the watchdog pings and tells systemd the service is stopping. */
  stop(): Promise<void>;
}

/**
 * READY=1 now, then WATCHDOG=1 every WatchdogSec/2 while the event loop is alive. Failures are
 * reported through `onError` and never end the agent: a missed ping is systemd's to judge.
 */
export async function startServiceNotifier(onError: (what: string, err: unknown) => void, opts: SdNotifyOptions = {}): Promise<ServiceNotifier> {
  await sdNotify(['--ready'], opts).catch((e: unknown) => onError('READY=1', e));
  const interval = watchdogIntervalMs(opts);
  let timer: NodeJS.Timeout | null = null;
  let inFlight: Promise<void> | null = null;
  if (interval !== null) {
    timer = setInterval(() => {
      if (inFlight) return; // a hung systemd-notify must not pile up children
      inFlight = sdNotify(['WATCHDOG=1'], opts)
        .then(
          () => undefined,
          (e: unknown) => onError('WATCHDOG=1', e),
        )
        .finally(() => (inFlight = null));
    }, interval);
    // The pings must not keep a stopping agent alive.
    timer.unref();
  }
  return {
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      // STOPPING=1 comes last, after a ping that may be under way.
      await inFlight;
      await sdNotify(['STOPPING=1'], opts).catch((e: unknown) => onError('STOPPING=1', e));
    },
  };
}
