// `script-dir` checks with real scripts in real folders (greenboot's required.d / wanted.d shape).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScriptDirCheckSpec } from '../../src/health/index.js';
import { runOne, writeExecutable } from './helpers.js';

let root: string;
let n = 0;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ota-scriptdir-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh folder with the given scripts; each appends its name to `log` when it runs. */
function folder(scripts: Record<string, string>): { dir: string; log: string } {
  const dir = join(root, `d${++n}`);
  mkdirSync(dir);
  const log = join(dir, '..', `d${n}.log`);
  for (const [name, body] of Object.entries(scripts)) {
    writeExecutable(join(dir, name), `#!/bin/sh\necho ${name} >> '${log}'\n${body}\n`);
  }
  return { dir, log };
}

const ran = (log: string): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);

describe('script-dir checks', () => {
  it('runs every executable in lexical order and passes when all pass', async () => {
    const { dir, log } = folder({ '20-b.sh': 'exit 0', '10-a.sh': 'echo hello', 'B-upper': 'exit 0', '9-nine': 'exit 0' });
    writeFileSync(join(dir, 'README'), 'not executable, not run\n');
    mkdirSync(join(dir, '15-subdir'));
    const result = await runOne({ kind: 'script-dir', name: 'greenboot-required', path: dir });
    expect(result).toMatchObject({ passed: true, attempts: 1, kind: 'script-dir' });
    // Code-unit order, like `LC_ALL=C ls`: digits before upper case before lower case.
    expect(ran(log)).toEqual(['10-a.sh', '20-b.sh', '9-nine', 'B-upper']);
    expect(result.outputTail.split('\n').filter(Boolean).map((l) => l.replace(/ \(\d+ ms\)/, ''))).toEqual(['PASS 10-a.sh', 'PASS 20-b.sh', 'PASS 9-nine', 'PASS B-upper']);
  });

  it('required mode: the first failure fails the check and later scripts do not run', async () => {
    const { dir, log } = folder({ '10-ok': 'exit 0', '20-disk': 'echo "disk /data is read-only" >&2; exit 3', '30-net': 'exit 0' });
    const result = await runOne({ kind: 'script-dir', name: 'required', path: dir, mode: 'required' });
    expect(result.passed).toBe(false);
    expect(result.error).toBe('20-disk: exit code 3, expected 0');
    expect(ran(log)).toEqual(['10-ok', '20-disk']);
    expect(result.outputTail).toMatch(/^PASS 10-ok \(\d+ ms\)\nFAIL 20-disk \(\d+ ms\): exit code 3, expected 0 — disk \/data is read-only\nSKIP 30-net \(not run: 20-disk failed\)\n$/);
  });

  it('wanted mode: every script runs, failures are listed, the check passes', async () => {
    const { dir, log } = folder({ '10-fail': 'echo first problem; exit 1', '20-ok': 'exit 0', '30-fail': 'exit 2' });
    const result = await runOne({ kind: 'script-dir', name: 'wanted', path: dir, mode: 'wanted' });
    expect(result.passed).toBe(true);
    expect(result.error).toBeUndefined();
    expect(ran(log)).toEqual(['10-fail', '20-ok', '30-fail']);
    expect(result.outputTail).toContain('FAIL 10-fail');
    expect(result.outputTail).toContain('— first problem');
    expect(result.outputTail).toContain('PASS 20-ok');
    expect(result.outputTail).toContain('FAIL 30-fail');
    expect(result.outputTail).toContain('exit code 2, expected 0');
  });

  it('runs scripts without a shell: a file without #! fails with ENOEXEC', async () => {
    const dir = join(root, `d${++n}`);
    mkdirSync(dir);
    writeExecutable(join(dir, 'no-shebang'), 'exit 0\n');
    const result = await runOne({ kind: 'script-dir', name: 'noshell', path: dir });
    expect(result.passed).toBe(false);
    expect(result.error).toContain('ENOEXEC');
  });

  it('follows symlinks to executables and ignores dangling ones', async () => {
    const { dir, log } = folder({ '10-real': 'exit 0' });
    const target = writeExecutable(join(root, `target-${n}`), `#!/bin/sh\necho linked >> '${log}'\n`);
    symlinkSync(target, join(dir, '20-link'));
    symlinkSync(join(root, 'nowhere'), join(dir, '30-dangling'));
    const result = await runOne({ kind: 'script-dir', name: 'links', path: dir });
    expect(result.passed).toBe(true);
    expect(ran(log)).toEqual(['10-real', 'linked']);
  });

  it('passes an empty folder and fails a missing one', async () => {
    const empty = join(root, `d${++n}`);
    mkdirSync(empty);
    expect(await runOne({ kind: 'script-dir', name: 'empty', path: empty })).toMatchObject({ passed: true, outputTail: `no executables in ${empty}` });
    const missing = await runOne({ kind: 'script-dir', name: 'missing', path: join(root, 'does-not-exist') });
    expect(missing.passed).toBe(false);
    expect(missing.error).toContain('ENOENT');
  });

  it('times out: the hanging script is killed and the rest does not run', async () => {
    const { dir, log } = folder({ '10-ok': 'exit 0', '20-hang': 'sleep 30', '30-after': 'exit 0' });
    const started = Date.now();
    const result = await runOne({ kind: 'script-dir', name: 'hang', path: dir, timeoutMs: 400 });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(result.passed).toBe(false);
    expect(result.error).toBe('20-hang: timed out after 400 ms');
    expect(result.outputTail).toContain('SKIP 30-after (not run: timed out after 400 ms)');
    expect(ran(log)).toEqual(['10-ok', '20-hang']);
  });

  it('retries the whole folder until it passes', async () => {
    const counter = join(root, `counter-${++n}`);
    const dir = join(root, `d${n}`);
    mkdirSync(dir);
    writeExecutable(join(dir, '10-flaky'), `#!/bin/sh\nc=$(cat '${counter}' 2>/dev/null || echo 0); c=$((c+1)); echo $c > '${counter}'; [ $c -ge 3 ]\n`);
    const result = await runOne({ kind: 'script-dir', name: 'flaky', path: dir, retries: 5, intervalMs: 10 });
    expect(result).toMatchObject({ passed: true, attempts: 3 });
    expect(readFileSync(counter, 'utf8').trim()).toBe('3');
  });

  it('schema: absolute path, mode defaults to required', () => {
    expect(ScriptDirCheckSpec.parse({ kind: 'script-dir', name: 's', path: '/etc/greenboot/check/required.d' }).mode).toBe('required');
    expect(ScriptDirCheckSpec.safeParse({ kind: 'script-dir', name: 's', path: 'relative/dir' }).success).toBe(false);
    expect(ScriptDirCheckSpec.safeParse({ kind: 'script-dir', name: 's', path: '/x', mode: 'optional' }).success).toBe(false);
  });
});
