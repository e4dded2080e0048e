// Shared bits of the health check tests: run one check through the real runner, free ports.
import { chmodSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { expect } from 'vitest';
import { HealthCheckSpec, runHealthChecks, type HealthCheckResult, type HealthCheckSpecInput, type RunHealthChecksOptions } from '../../src/health/index.js';

export async function runOne(input: HealthCheckSpecInput, opts: RunHealthChecksOptions = {}): Promise<HealthCheckResult> {
  const verdict = await runHealthChecks([HealthCheckSpec.parse(input)], opts);
  const [result] = verdict.results;
  if (!result) throw new Error('no result');
  expect(result.durationMs).toBeGreaterThanOrEqual(0);
  return result;
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  return port;
}

/** Writes an executable file. */
export function writeExecutable(path: string, content: string, mode = 0o755): string {
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}
