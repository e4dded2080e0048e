// Loading the config: a specific, human-readable error for every problem, and nothing starts on a
// config that does not validate.
import { readFileSync } from 'node:fs';
import { describeZodError } from '../core/signed-message.js';
import { Config } from './schema.js';

export class ConfigError extends Error {}

export function parseConfig(value: unknown, source = 'config'): Config {
  const r = Config.safeParse(value);
  if (!r.success) throw new ConfigError(`${source}: ${describeZodError(r.error)}`);
  const c = r.data;
  const plaintext = /^(mqtt|tcp|ws):\/\//.test(c.mqtt.url);
  if (plaintext && !c.mqtt.allowPlaintext) {
    throw new ConfigError(`${source}: mqtt.url ${c.mqtt.url} is not encrypted; use mqtts:// or set mqtt.allowPlaintext: true`);
  }
  return c;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not JSON: ${(e as Error).message}`);
  }
  return parseConfig(json, path);
}
