// The config of a simulated device for the demo and tests: simulated A/B slots, a health check
// that reads the booted "rootfs", and the fleet key as the trusted key.
import { join } from 'node:path';
import type { ConfigInput } from '../config/schema.js';

export interface SimDeviceOptions {
  dir: string;
  deviceId: string;
  brokerUrl: string;
  protocolVersion: 4 | 5;
  publicKeyPem: string;
  compatible?: string;
  channel?: string;
  groups?: string[];
  initialVersion?: string;
  installDelayMs?: number;
  /** Seconds the health check sleeps before answering (keeps the device in verifying for crash tests). */
  checkDelaySeconds?: number;
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export function simulatedDeviceConfig(o: SimDeviceOptions): ConfigInput {
  const simDir = join(o.dir, 'device');
  const healthFile = join(simDir, 'booted', 'health');
  // The check reads the file the new slot's image put into its rootfs: "ok" passes, anything else fails.
  const script = `setTimeout(()=>{const fs=require('fs');const v=fs.readFileSync(${JSON.stringify(healthFile)},'utf8').trim();console.log('self-test: '+v);process.exit(v==='ok'?0:1)},${(o.checkDelaySeconds ?? 0) * 1000})`;
  return {
    deviceId: o.deviceId,
    compatible: o.compatible ?? 'acme-gw',
    channels: [o.channel ?? 'stable'],
    groups: o.groups ?? [],
    stateDir: join(o.dir, 'state'),
    mqtt: { url: o.brokerUrl, protocolVersion: o.protocolVersion, allowPlaintext: true, reconnectPeriodMs: 500 },
    trust: { keys: [{ publicKeyPem: o.publicKeyPem }] },
    backend: { type: 'simulated', dir: simDir, initialVersion: o.initialVersion ?? '1.0.0', installDelayMs: o.installDelayMs ?? 0 },
    // OTA_WAIT_SCALE (see FleetWatcher.waitFor): under qemu-user the check's own node takes seconds to start.
    healthChecks: [{ kind: 'command', name: 'self-test', argv: [process.execPath, '-e', script], timeoutMs: (10_000 + (o.checkDelaySeconds ?? 0) * 1000) * (Number(process.env.OTA_WAIT_SCALE) || 1) }],
    artifacts: { allowedSchemes: ['http', 'https'] },
    log: { level: o.logLevel ?? 'info' },
  };
}
