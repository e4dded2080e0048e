// Health checks against real processes, HTTP servers and sockets; nothing is mocked because the
// interesting failures (grandchildren holding pipes, refused ports, silent servers) live in the OS.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import {
  CommandCheckSpec,
  HealthCheckSpec,
  HealthVerdict,
  OUTPUT_TAIL_BYTES,
  formatVerdictTable,
  runCommandAttempt,
  runHealthChecks,
  type HealthCheckResult,
  type HealthCheckSpecInput,
} from '../../src/health/index.js';

const node = process.execPath;
let scratch: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'ota-health-'));
});
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

async function runOne(input: HealthCheckSpecInput): Promise<HealthCheckResult> {
  const verdict = await runHealthChecks([HealthCheckSpec.parse(input)]);
  const [result] = verdict.results;
  if (!result) throw new Error('no result');
  expect(result.durationMs).toBeGreaterThanOrEqual(0);
  return result;
}

function parseError(input: unknown): string {
  const parsed = HealthCheckSpec.safeParse(input);
  if (parsed.success) throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
  return z.prettifyError(parsed.error);
}

/** A zombie counts as gone: it no longer runs, it merely waits for a (possibly absent) reaper. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function waitUntilGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!isRunning(pid)) return true;
    await sleep(50);
  }
  return false;
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  return port;
}

describe('schema', () => {
  it('applies defaults', () => {
    expect(HealthCheckSpec.parse({ kind: 'command', name: 'c', argv: ['true'] })).toEqual({
      kind: 'command',
      name: 'c',
      argv: ['true'],
      required: true,
      timeoutMs: 10_000,
      retries: 0,
      intervalMs: 1_000,
      expectExitCode: 0,
    });
    expect(HealthCheckSpec.parse({ kind: 'http', name: 'h', url: 'http://localhost:8080/health' })).toEqual({
      kind: 'http',
      name: 'h',
      url: 'http://localhost:8080/health',
      required: true,
      timeoutMs: 10_000,
      retries: 0,
      intervalMs: 1_000,
      method: 'GET',
      expectStatus: 200,
    });
    expect(HealthCheckSpec.parse({ kind: 'tcp', name: 't', host: '127.0.0.1', port: 22, required: false })).toMatchObject(
      { required: false, timeoutMs: 10_000, retries: 0, intervalMs: 1_000 },
    );
  });

  it('rejects an unknown kind', () => {
    const message = parseError({ kind: 'smtp', name: 'mail' });
    expect(message).toContain('kind');
    expect(message).toContain("'command' | 'http' | 'tcp' | 'systemd-unit' | 'mqtt-broker' | 'script-dir'");
  });

  it('rejects unknown fields', () => {
    expect(parseError({ kind: 'tcp', name: 't', host: 'localhost', port: 1, retry: 3 })).toContain(
      'Unrecognized key: "retry"',
    );
  });

  it('rejects an empty argv', () => {
    const message = parseError({ kind: 'command', name: 'c', argv: [] });
    expect(message).toContain('argv');
    expect(message).toMatch(/too small/i);
  });

  it('rejects bad names, non-HTTP URLs and out-of-range ports', () => {
    expect(parseError({ kind: 'tcp', name: 'has space', host: 'h', port: 1 })).toContain('name');
    expect(parseError({ kind: 'http', name: 'h', url: 'ftp://example.com/' })).toContain(
      'must be an http:// or https:// URL',
    );
    expect(parseError({ kind: 'tcp', name: 't', host: 'h', port: 70_000 })).toContain('port');
  });

  it('converts to JSON Schema', () => {
    const schema = z.toJSONSchema(HealthCheckSpec, { io: 'input' }) as { oneOf?: unknown[] };
    expect(schema.oneOf).toHaveLength(6);
    expect(() => z.toJSONSchema(HealthVerdict)).not.toThrow();
  });
});

describe('command checks', () => {
  it('passes on the expected exit code', async () => {
    const result = await runOne({ kind: 'command', name: 'ok', argv: [node, '-e', 'process.exit(0)'] });
    expect(result).toMatchObject({ passed: true, attempts: 1, kind: 'command', required: true });
    expect(result.error).toBeUndefined();
  });

  it('names the exit code on failure', async () => {
    const result = await runOne({ kind: 'command', name: 'bad', argv: [node, '-e', 'process.exit(3)'] });
    expect(result.passed).toBe(false);
    expect(result.error).toContain('exit code 3');
  });

  it('accepts a non-zero expected exit code, env and cwd', async () => {
    const result = await runOne({
      kind: 'command',
      name: 'env',
      argv: [node, '-e', 'process.exit(process.env.HC_CODE === "7" && process.cwd() === process.argv[1] ? 7 : 1)', scratch],
      env: { HC_CODE: '7' },
      cwd: scratch,
      expectExitCode: 7,
    });
    expect(result.passed).toBe(true);
  });

  it('does not use a shell', async () => {
    const result = await runOne({ kind: 'command', name: 'noshell', argv: ['echo $HOME; exit 0'] });
    expect(result.passed).toBe(false);
    expect(result.error).toContain('ENOENT');
  });

  it('captures the tail of stdout and stderr', async () => {
    const script = 'process.stdout.write("x".repeat(10000) + "OUT-END\\n"); process.stderr.write("ERR-END\\n"); process.exit(1)';
    const result = await runOne({ kind: 'command', name: 'chatty', argv: [node, '-e', script] });
    expect(result.passed).toBe(false);
    expect(result.outputTail).toContain('OUT-END');
    expect(result.outputTail).toContain('ERR-END');
    expect(Buffer.byteLength(result.outputTail)).toBeLessThanOrEqual(OUTPUT_TAIL_BYTES);
  });

  it('kills the whole process group on timeout', { timeout: 20_000 }, async () => {
    const pidFile = join(scratch, 'grandchild.pid');
    // The background sleep inherits stdout: unless it is killed too, the attempt cannot finish
    // before the sleep does, which is longer than this test's timeout.
    const result = await runOne({
      kind: 'command',
      name: 'hang',
      argv: ['sh', '-c', 'echo started; sleep 30 & echo $! > "$1"; wait', 'sh', pidFile],
      timeoutMs: 1500,
    });
    expect(result.passed).toBe(false);
    expect(result.error).toBe('timed out after 1500 ms');
    const grandchild = Number(readFileSync(pidFile, 'utf8').trim());
    expect(grandchild).toBeGreaterThan(0);
    expect(await waitUntilGone(grandchild)).toBe(true);
  });

  it('retries until the command passes', async () => {
    const counter = join(scratch, 'counter');
    const script =
      'const fs = require("fs"); const f = process.argv[1];' +
      'const n = (fs.existsSync(f) ? Number(fs.readFileSync(f, "utf8")) : 0) + 1;' +
      'fs.writeFileSync(f, String(n)); console.log("attempt " + n); process.exit(n >= 3 ? 0 : 1)';
    const result = await runOne({
      kind: 'command',
      name: 'flaky',
      argv: [node, '-e', script, counter],
      retries: 5,
      intervalMs: 10,
    });
    expect(result).toMatchObject({ passed: true, attempts: 3 });
    expect(result.outputTail).toContain('attempt 3');
    expect(readFileSync(counter, 'utf8')).toBe('3');
  });

  it('stops after 1 + retries attempts', async () => {
    const result = await runOne({
      kind: 'command',
      name: 'always-fails',
      argv: [node, '-e', 'process.exit(2)'],
      retries: 2,
      intervalMs: 0,
    });
    expect(result).toMatchObject({ passed: false, attempts: 3 });
  });

  it('fails without spawning when already aborted', async () => {
    const spec = CommandCheckSpec.parse({ kind: 'command', name: 'x', argv: [node, '-e', ''] });
    expect(await runCommandAttempt(spec, AbortSignal.abort())).toMatchObject({ passed: false, error: 'aborted' });
  });
});

describe('http checks', () => {
  let server: http.Server;
  let base: string;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/ok') res.end('status: ok\n');
      else if (req.url === '/down') res.writeHead(503).end('maintenance\n');
      else if (req.url === '/big') res.end('y'.repeat(200 * 1024) + 'NEVER-READ');
      else if (req.url === '/hang') return; // never answers
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('passes on the expected status and body', async () => {
    const result = await runOne({ kind: 'http', name: 'api', url: `${base}/ok`, bodyMatch: 'ok' });
    expect(result).toMatchObject({ passed: true, attempts: 1, outputTail: 'status: ok\n' });
  });

  it('passes a HEAD request', async () => {
    const result = await runOne({ kind: 'http', name: 'head', url: `${base}/ok`, method: 'HEAD' });
    expect(result.passed).toBe(true);
  });

  it('reports a wrong status', async () => {
    const result = await runOne({ kind: 'http', name: 'api', url: `${base}/down` });
    expect(result.passed).toBe(false);
    expect(result.error).toBe('HTTP 503, expected 200');
    expect(result.outputTail).toContain('maintenance');
  });

  it('reports a body that does not match', async () => {
    const result = await runOne({ kind: 'http', name: 'api', url: `${base}/ok`, bodyMatch: 'healthy' });
    expect(result.passed).toBe(false);
    expect(result.error).toBe('body does not contain "healthy"');
  });

  it('reads at most 64 KiB of the body', async () => {
    const result = await runOne({ kind: 'http', name: 'big', url: `${base}/big`, bodyMatch: 'NEVER-READ' });
    expect(result.passed).toBe(false);
    expect(result.error).toBe('body does not contain "NEVER-READ"');
  });

  it('times out on a server that never answers', async () => {
    const result = await runOne({ kind: 'http', name: 'hang', url: `${base}/hang`, timeoutMs: 300 });
    expect(result.passed).toBe(false);
    expect(result.error).toBe('timed out after 300 ms');
  });

  it('reports a refused connection', async () => {
    const port = await closedPort();
    const result = await runOne({ kind: 'http', name: 'gone', url: `http://127.0.0.1:${port}/` });
    expect(result.passed).toBe(false);
    expect(result.error).toContain('ECONNREFUSED');
    expect(result.outputTail).toContain('ECONNREFUSED');
  });
});

describe('tcp checks', () => {
  it('passes when the port accepts connections', async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const result = await runOne({ kind: 'tcp', name: 'listener', host: '127.0.0.1', port });
      expect(result).toMatchObject({ passed: true, attempts: 1 });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('reports a refused connection', async () => {
    const port = await closedPort();
    const result = await runOne({ kind: 'tcp', name: 'closed', host: '127.0.0.1', port });
    expect(result.passed).toBe(false);
    expect(result.error).toBe(`connect ECONNREFUSED 127.0.0.1:${port}`);
  });
});

describe('verdict', () => {
  const pass = { kind: 'command', argv: [node, '-e', 'process.exit(0)'] } as const;
  const fail = { kind: 'command', argv: [node, '-e', 'process.exit(1)'] } as const;

  it('passes an empty list', async () => {
    const verdict = await runHealthChecks([]);
    expect(verdict).toMatchObject({ passed: true, results: [], failed: [] });
    expect(formatVerdictTable(verdict)).toContain('verdict: PASS');
  });

  it('does not fail on a failing wanted check', async () => {
    const specs = [
      HealthCheckSpec.parse({ ...pass, name: 'core' }),
      HealthCheckSpec.parse({ ...fail, name: 'nice-to-have', required: false }),
    ];
    const verdict = await runHealthChecks(specs);
    expect(verdict.passed).toBe(true);
    expect(verdict.failed).toEqual([]);
    expect(verdict.results.map((r) => [r.name, r.passed])).toEqual([
      ['core', true],
      ['nice-to-have', false],
    ]);
    const table = formatVerdictTable(verdict);
    expect(table).toMatch(/nice-to-have\s+command\s+wanted\s+FAIL\s+1\s+\d+(\.\d)? m?s\s+exit code 1, expected 0/);
    expect(table).toContain('verdict: PASS');
  });

  it('fails on a failing required check and lists it', async () => {
    const specs = [
      HealthCheckSpec.parse({ ...fail, name: 'rauc-status' }),
      HealthCheckSpec.parse({ ...pass, name: 'app' }),
      HealthCheckSpec.parse({ ...fail, name: 'optional', required: false }),
    ];
    const seen: string[] = [];
    const times = [new Date('2030-01-01T00:00:00.000Z'), new Date('2030-01-01T00:00:05.000Z')];
    const verdict = await runHealthChecks(specs, {
      onResult: (r) => seen.push(r.name),
      now: () => times.shift() ?? new Date(0),
    });
    expect(verdict.passed).toBe(false);
    expect(verdict.failed).toEqual(['rauc-status']);
    expect(seen).toEqual(['rauc-status', 'app', 'optional']);
    expect(verdict.startedAt).toBe('2030-01-01T00:00:00.000Z');
    expect(verdict.finishedAt).toBe('2030-01-01T00:00:05.000Z');
    expect(HealthVerdict.safeParse(verdict).success).toBe(true);
    const table = formatVerdictTable(verdict);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+KIND\s+REQUIREMENT\s+RESULT\s+ATTEMPTS\s+DURATION\s+ERROR$/);
    expect(table).toContain('verdict: FAIL (required checks failed: rauc-status)');
  });

  it('rejects instead of producing a verdict when aborted', { timeout: 20_000 }, async () => {
    const controller = new AbortController();
    const run = runHealthChecks(
      [HealthCheckSpec.parse({ kind: 'command', name: 'slow', argv: [node, '-e', 'setTimeout(() => {}, 30000)'] })],
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(new Error('agent stopping')), 100);
    await expect(run).rejects.toThrow('agent stopping');
  });
});
