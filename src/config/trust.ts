// Turns the configured public keys into the verifier's trust policy (keyid -> key).
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { keyIdOf, loadPublicKey } from '../crypto/dsse.js';
import type { TrustPolicy } from '../core/signed-message.js';
import { ConfigError } from './load.js';
import type { Config } from './schema.js';

export function trustPolicy(config: Config): TrustPolicy {
  const keys = new Map<string, KeyObject>();
  config.trust.keys.forEach((k, i) => {
    let pem: string;
    try {
      pem = k.publicKeyPem ?? readFileSync(k.publicKeyFile as string, 'utf8');
    } catch (e) {
      throw new ConfigError(`trust.keys.${i}: cannot read ${k.publicKeyFile}: ${(e as Error).message}`);
    }
    try {
      const key = loadPublicKey(pem);
      keys.set(keyIdOf(key), key);
    } catch (e) {
      throw new ConfigError(`trust.keys.${i}: ${(e as Error).message}`);
    }
  });
  const revoked = new Set(config.trust.revokedKeyIds);
  const usable = [...keys.keys()].filter((id) => !revoked.has(id)).length;
  if (usable === 0) throw new ConfigError('trust: every configured key is revoked; the device could never accept an update');
  if (config.trust.threshold > usable) {
    throw new ConfigError(`trust.threshold ${config.trust.threshold} exceeds the ${usable} usable (configured, not revoked) key(s)`);
  }
  for (const [channel, n] of Object.entries(config.trust.channelThresholds)) {
    if (n > usable) throw new ConfigError(`trust.channelThresholds.${channel} = ${n} exceeds the ${usable} usable key(s)`);
  }
  const commandThreshold = config.trust.commandThreshold ?? defaultCommandThreshold(config);
  if (commandThreshold > usable) throw new ConfigError(`trust.commandThreshold ${commandThreshold} exceeds the ${usable} usable key(s)`);
  return { keys, threshold: config.trust.threshold, revoked, channelThresholds: config.trust.channelThresholds, commandThreshold };
}

/**
 * A command (rollback, cancel, reboot...) acts on whatever the device runs, so by default it needs
 * as many signatures as the strictest channel the device follows: otherwise one key could roll back
 * a device whose updates take two.
 */
function defaultCommandThreshold(config: Config): number {
  const perChannel = config.channels.map((c) => config.trust.channelThresholds[c] ?? 0);
  return Math.max(config.trust.threshold, ...perChannel);
}
