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
  if (config.trust.threshold > keys.size) {
    throw new ConfigError(`trust.threshold ${config.trust.threshold} exceeds the ${keys.size} distinct trusted key(s)`);
  }
  return { keys, threshold: config.trust.threshold };
}
