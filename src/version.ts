// The agent's own version: set at bundle time (scripts/bundle.mjs), otherwise read once from the
// package.json next to dist/ or src/.
import { readFileSync } from 'node:fs';

declare const __OTA_AGENT_VERSION__: string | undefined;

function read(): string {
  if (typeof __OTA_AGENT_VERSION__ === 'string') return __OTA_AGENT_VERSION__;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const AGENT_VERSION = read();
