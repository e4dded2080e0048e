// The device configuration: the single source for validation, defaults, and schemas/config.schema.json.
import * as z from 'zod';
import { HEALTH_SETTINGS_DEFAULTS, HealthCheckSpec, HealthSettings } from '../health/schema.js';
import { SafeId } from '../schemas/common.js';

const AbsPath = z.string().min(1).max(4096).regex(/^\//, 'an absolute path');

export const TopicPrefix = z
  .string()
  .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'topic levels of letters, digits, "_", ".", "-"; no wildcards, no leading or trailing "/"');

export const MqttConfig = z
  .object({
    url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'mqtt://, mqtts://, ws:// or wss:// URL'),
    protocolVersion: z.union([z.literal(5), z.literal(4)]).default(5).describe('5 = MQTT 5, 4 = MQTT 3.1.1'),
    clientId: z.string().min(1).max(128).optional().describe('defaults to ota-agent-<deviceId>'),
    username: z.string().max(256).optional(),
    password: z.string().max(1024).optional(),
    keepaliveSeconds: z.number().int().min(5).max(3600).default(30),
    reconnectPeriodMs: z.number().int().min(100).max(600_000).default(2000),
    allowPlaintext: z.boolean().default(false).describe('must be true to use mqtt:// or ws:// (no TLS)'),
    tls: z
      .object({
        caFile: AbsPath.optional(),
        certFile: AbsPath.optional(),
        keyFile: AbsPath.optional(),
        rejectUnauthorized: z.boolean().default(true),
      })
      .strict()
      .optional(),
  })
  .strict();

export const TrustedKey = z
  .object({
    publicKeyPem: z.string().min(40).max(4096).optional(),
    publicKeyFile: AbsPath.optional(),
    comment: z.string().max(200).optional(),
  })
  .strict()
  .refine((k) => (k.publicKeyPem === undefined) !== (k.publicKeyFile === undefined), 'exactly one of publicKeyPem or publicKeyFile');

/** Backend options are validated by the backend itself (src/backends/registry.ts), so a new backend needs no change here. */
export const BackendConfig = z.object({ type: z.string().min(1).max(32) }).catchall(z.unknown());

export const Config = z
  .object({
    deviceId: SafeId,
    compatible: SafeId,
    channels: z.array(SafeId).min(1).max(16).default(['stable']),
    groups: z.array(SafeId).max(64).default([]),
    stateDir: AbsPath.describe('SQLite database and downloads; writable only by the agent'),
    topicPrefix: TopicPrefix.default('ota/v1'),
    mqtt: MqttConfig,
    trust: z
      .object({
        keys: z.array(TrustedKey).min(1).max(32),
        threshold: z.number().int().min(1).max(8).default(1).describe('distinct trusted signatures required'),
        revokedKeyIds: z
          .array(z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex keyid'))
          .max(256)
          .default([])
          .describe('keyids whose signatures no longer count (a leaked key), even while still listed in keys'),
        channelThresholds: z
          .record(SafeId, z.number().int().min(1).max(8))
          .default({})
          .describe('channels that need more distinct trusted signatures, e.g. {"stable": 2}'),
        commandThreshold: z
          .number()
          .int()
          .min(1)
          .max(8)
          .optional()
          .describe('distinct trusted signatures a command needs; default: the highest of threshold and the thresholds of the channels this device follows'),
      })
      .strict(),
    backend: BackendConfig,
    healthChecks: z.array(HealthCheckSpec).max(64).default([]),
    health: HealthSettings.default(() => ({ ...HEALTH_SETTINGS_DEFAULTS })),
    reboot: z
      .object({
        waitForCommand: z
          .boolean()
          .default(false)
          .describe('after installing, reboot only when a signed "reboot" command arrives (the command reboots at once, whatever the announcement window says)'),
      })
      .strict()
      .default({ waitForCommand: false }),
    artifacts: z
      .object({
        allowedSchemes: z.array(z.enum(['https', 'http'])).min(1).default(['https']),
        allowedHosts: z.array(z.string().min(1).max(253)).max(64).optional(),
        maxBytes: z.number().int().min(1).max(2 ** 40).default(4 * 2 ** 30).describe('largest artifact accepted (default 4 GiB)'),
      })
      .strict()
      .default({ allowedSchemes: ['https'], maxBytes: 4 * 2 ** 30 }),
    limits: z
      .object({
        maxMessageBytes: z.number().int().min(1024).max(1_048_576).default(65_536),
        clockSkewSeconds: z.number().int().min(0).max(86_400).default(300),
        maxResumes: z.number().int().min(1).max(100).default(5).describe('agent restarts tolerated in one state before the loop guard acts'),
        maxTransitions: z.number().int().min(16).max(1000).default(32),
        refusalBurst: z.number().int().min(1).max(10_000).default(30).describe('refusals of unsigned or wrongly signed messages recorded one by one before refusalsPerMinute applies'),
        refusalsPerMinute: z.number().int().min(1).max(60_000).default(30).describe('steady rate of such refusals recorded one by one; the rest are counted and reported as one RATE_LIMITED event a minute'),
        historyKeep: z
          .number()
          .int()
          .min(10)
          .max(10_000)
          .default(100)
          .describe('finished updates kept in the history (status, history) with their transitions; recording one more deletes the oldest (~3.4 KiB each)'),
      })
      .strict()
      .default({ maxMessageBytes: 65_536, clockSkewSeconds: 300, maxResumes: 5, maxTransitions: 32, refusalBurst: 30, refusalsPerMinute: 30, historyKeep: 100 }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();
export type Config = z.infer<typeof Config>;
export type ConfigInput = z.input<typeof Config>;
