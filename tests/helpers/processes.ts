// Shared by the testbeds that run real daemons and tools (RAUC, OSTree, a private dbus-daemon):
// finding binaries with an install hint, running tools with argv arrays, and waiting for sockets.
import { execFile } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** PATH plus the sbin directories, where daemons and admin tools live. */
export const SEARCH_PATH = [...new Set([...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'])];
export const CHILD_PATH = SEARCH_PATH.join(delimiter);

/** Absolute path of an executable, or an Error saying which Debian package provides it. */
export function findBinary(name: string, who: string, pkg: string, aptHint: string): string {
  for (const d of SEARCH_PATH) {
    const p = join(d, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // next directory
    }
  }
  throw new Error(`${name} is not installed (needed by ${who}): install the Debian package ${pkg} — \`${aptHint}\``);
}

/** Single-quotes a string for /bin/sh (for the scripts a testbed writes, never to run a command). */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs a tool with an argv array; a failure carries the command line and its stderr. */
export async function runTool(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    const { stdout } = await execFileP(file, args, { env, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string; code?: number };
    throw new Error(`${file} ${args.join(' ')} failed (exit ${String(err.code)}): ${err.stderr || err.stdout || err.message}`, { cause: e });
  }
}

export async function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
