// Structured JSON logs on stdout (journald stores them as-is). Secrets are redacted by path so a
// debug log can be shared safely.
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password',
  '*.password',
  'mqtt.password',
  'config.mqtt.password',
  '*.privateKey',
  '*.privateKeyPem',
  'key',
  '*.key',
  'headers.authorization',
  '*.headers.authorization',
];

export function createLogger(level: string, name = 'ota-agent', destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that writes nothing, for CLI commands that print their own output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
