// The agent in-process, without a broker: a real store, the simulated backend and a loopback
// artifact server. Covers the paths that are hard to reach from outside — here, a health check
// runner that throws instead of returning a verdict must still end the update with a reason.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { parseConfig } from '../../src/config/load.js';
import { trustPolicy } from '../../src/config/trust.js';
import { startArtifactServer, type ArtifactServer } from '../../src/demo/artifact-server.js';
import { simulatedDeviceConfig } from '../../src/demo/device-config.js';
import { generateKeyPair, signAnnouncement } from '../../src/fleet/sign.js';
import { runHealthChecks } from '../../src/health/runner.js';
import type { HealthVerdict } from '../../src/health/schema.js';
import { SimulatedBackend, SimulatedOptions } from '../../src/simulated/backend.js';
import { encodeSimImage } from '../../src/simulated/image.js';
import { AgentStore } from '../../src/store/agent-store.js';
import { silentLogger } from '../../src/util/log.js';
import { createPrivateKey } from 'node:crypto';
import type { RebootOutcome } from '../../src/core/backend.js';

let server: ArtifactServer;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ota-inproc-'));
  mkdirSync(join(dir, 'artifacts'));
  server = await startArtifactServer(join(dir, 'artifacts'));
});
afterAll(async () => server?.close());

const key = generateKeyPair();

/** Boots the device (a new backend instance = a power-on) and starts an agent on it. */
async function boot(devDir: string, runChecks: (s: never, signal: AbortSignal) => Promise<HealthVerdict>) {
  const config = parseConfig(simulatedDeviceConfig({ dir: devDir, deviceId: 'd1', brokerUrl: 'mqtt://127.0.0.1:1', protocolVersion: 5, publicKeyPem: key.publicKeyPem }));
  const store = new AgentStore(join(config.stateDir, 'agent.db'));
  const backend = await SimulatedBackend.open(SimulatedOptions.parse(config.backend), config.compatible, join(config.stateDir, 'downloads'));
  const agent = new Agent({ config, store, backend, trust: trustPolicy(config), log: silentLogger(), agentVersion: 'test', runChecks: runChecks as never });
  const rebooted = new Promise<RebootOutcome>((r) => agent.once('reboot', r));
  await agent.start();
  return { agent, store, rebooted };
}

describe('agent in-process', () => {
  it('a health-check runner that throws ends the update in reverting with the error as the reason', async () => {
    const devDir = join(dir, 'dev1');
    const bytes = encodeSimImage({ format: 'ota-sim-image/1', compatible: 'acme-gw', version: '1.1.0', files: { health: 'ok' } });
    writeFileSync(join(dir, 'artifacts', 'img'), bytes);
    const now = Date.now();
    const env = signAnnouncement(
      {
        id: 'u1', sequence: 1, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 3600_000).toISOString(),
        compatible: 'acme-gw', channel: 'stable', version: '1.1.0', backend: 'rauc',
        artifact: { url: server.url('img'), sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length },
        rollout: { percent: 100 },
      },
      [createPrivateKey(key.privateKeyPem)],
    ).envelope;

    const first = await boot(devDir, (s, signal) => runHealthChecks(s, { signal }));
    const d = first.agent.handleAnnouncement('ota/v1/announce/acme-gw/stable', Buffer.from(JSON.stringify(env)));
    expect(d?.kind).toBe('accept');
    expect(await first.rebooted).toEqual({ kind: 'exit-process', exitCode: 75 });
    await first.agent.stop();
    first.store.close();

    // The next boot comes up on the new slot; the check runner blows up.
    const second = await boot(devDir, async () => {
      throw new TypeError('checks exploded');
    });
    await second.rebooted; // reverting reboots back
    const rec = second.store.current();
    expect(rec?.state).toBe('reverting');
    expect(rec?.cause).toMatchObject({ reason: 'HEALTH_CHECK_FAILED', message: 'unexpected error in verifying: checks exploded' });
    await second.agent.stop();
    second.store.close();

    const third = await boot(devDir, (s, signal) => runHealthChecks(s, { signal }));
    await third.agent.idle();
    const last = third.store.history(1)[0];
    expect(last).toMatchObject({ updateId: 'u1', result: 'reverted', reason: 'HEALTH_CHECK_FAILED' });
    expect(third.agent.bootInfo.version).toBe('1.0.0');
    await third.agent.stop();
    third.store.close();
  });
});
