// Runs the `ostree` tool (and the python3-gi helper) for both OSTree drivers: execFile with argv
// arrays (never a shell), every call through the configured commandPrefix (the hook for a chroot,
// a mount namespace or a container holding the booted system), errors carrying the tool's stderr.
import { execFile } from 'node:child_process';
import type { OstreeOptions } from './options.js';

export class OstreeCommandError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number | string | null,
  ) {
    super(message);
  }
}

export interface RunOptions {
  input?: string;
  signal?: AbortSignal;
}

export class OstreeCli {
  constructor(private readonly opts: Pick<OstreeOptions, 'commandPrefix' | 'python' | 'commandTimeoutMs' | 'ostreeBinary' | 'sysroot'>) {}

  /** Runs argv (through commandPrefix) and returns stdout; errors carry the command's stderr. */
  run(argv: string[], o: RunOptions = {}): Promise<string> {
    const full = [...this.opts.commandPrefix, ...argv];
    const [file, ...args] = full as [string, ...string[]];
    const shown = argv[0] === this.opts.python ? `${this.opts.python} -c <set-default helper> ${argv.slice(3).join(' ')}` : argv.join(' ');
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args,
        {
          env: { ...process.env, LC_ALL: 'C' },
          maxBuffer: 16 * 1024 * 1024,
          timeout: this.opts.commandTimeoutMs,
          ...(o.signal ? { signal: o.signal } : {}),
        },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const e = err as Error & { code?: number | string; killed?: boolean; signal?: string };
          if (e.code === 'ENOENT') {
            return reject(new OstreeCommandError(`${shown}: ${file} not found (install ostree; for the helper python3-gi and gir1.2-ostree-1.0)`, '', e.code));
          }
          const text = (stderr || stdout || e.message).trim().split('\n').slice(-6).join(' | ');
          reject(new OstreeCommandError(`${shown} failed (${e.killed ? `killed ${e.signal ?? ''}` : `exit ${String(e.code)}`}): ${text}`, stderr, e.code ?? null));
        },
      );
      if (o.input !== undefined) child.stdin?.end(o.input);
    });
  }

  ostree(args: string[], o: RunOptions = {}): Promise<string> {
    return this.run([this.opts.ostreeBinary, ...args], o);
  }

  repoArg(): string {
    return `--repo=${this.opts.sysroot.replace(/\/$/, '')}/ostree/repo`;
  }
}
