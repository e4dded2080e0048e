// Health check config and result schemas. These are the single source of truth: the JSON Schema
// shipped to device integrators is generated from them, so everything here must survive
// z.toJSONSchema (no transforms, no refinements, no cross-field rules).
import * as z from 'zod';

const HTTP_URL_MESSAGE = 'must be an http:// or https:// URL';

const commonFields = {
  name: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9._-]+$/, 'may only contain letters, digits, ".", "_" and "-"')
    .describe('Identifies the check in logs, verdicts and fleet reports; letters, digits, ".", "_", "-".'),
  required: z
    .boolean()
    .default(true)
    .describe(
      'true: a failure blocks the commit and triggers rollback. false ("wanted"): failures are only reported.',
    ),
  timeoutMs: z
    .int()
    .min(1)
    .max(600_000)
    .default(10_000)
    .describe('Deadline for a single attempt in milliseconds; on expiry the attempt fails (commands are killed).'),
  retries: z
    .int()
    .min(0)
    .max(100)
    .default(0)
    .describe('Extra attempts after a failure; the check passes on the first passing attempt.'),
  intervalMs: z
    .int()
    .min(0)
    .max(600_000)
    .default(1_000)
    .describe('Pause between attempts in milliseconds, giving slow services time to come up after boot.'),
};

export const CommandCheckSpec = z
  .strictObject({
    kind: z.literal('command').describe('Runs a program and checks its exit code.'),
    ...commonFields,
    argv: z
      .array(z.string())
      .min(1)
      .describe('Program and arguments. Executed directly, never through a shell: use ["sh", "-c", "..."] for shell syntax.'),
    env: z
      .record(z.string(), z.string())
      .optional()
      .describe("Extra environment variables, layered over the agent's own environment."),
    cwd: z.string().min(1).optional().describe('Working directory; defaults to the agent\'s working directory.'),
    expectExitCode: z
      .int()
      .min(0)
      .max(255)
      .default(0)
      .describe('Exit code that counts as healthy.'),
  })
  .describe('Command health check');
export type CommandCheckSpec = z.infer<typeof CommandCheckSpec>;

export const HttpCheckSpec = z
  .strictObject({
    kind: z.literal('http').describe('Sends one HTTP(S) request and checks the response.'),
    ...commonFields,
    url: z
      // z.httpUrl() would reject http://localhost and IP literals, which is where device services live.
      .url({ protocol: /^https?$/, error: HTTP_URL_MESSAGE, abort: true })
      .regex(/^https?:\/\//i, HTTP_URL_MESSAGE)
      .describe('http:// or https:// URL. Redirects are not followed; TLS certificates are verified.'),
    method: z.enum(['GET', 'HEAD']).default('GET').describe('Request method.'),
    expectStatus: z.int().min(100).max(599).default(200).describe('Response status that counts as healthy.'),
    bodyMatch: z
      .string()
      .min(1)
      .optional()
      .describe('Substring that must appear in the response body (only the first 64 KiB are read; needs GET).'),
  })
  .describe('HTTP health check');
export type HttpCheckSpec = z.infer<typeof HttpCheckSpec>;

export const TcpCheckSpec = z
  .strictObject({
    kind: z.literal('tcp').describe('Passes as soon as a TCP connection is established.'),
    ...commonFields,
    host: z.string().min(1).describe('Host name or IP address.'),
    port: z.int().min(1).max(65_535).describe('TCP port.'),
  })
  .describe('TCP connect health check');
export type TcpCheckSpec = z.infer<typeof TcpCheckSpec>;

// systemd unit names: letters, digits, ":", "_", ".", "\\", "@", "-", then a unit type suffix.
const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|device|mount|automount|swap|timer|path|slice|scope)$/;

export const SystemdUnitCheckSpec = z
  .strictObject({
    kind: z.literal('systemd-unit').describe('Asks systemd over D-Bus whether a unit is active.'),
    ...commonFields,
    unit: z
      .string()
      .max(256)
      .regex(UNIT_NAME, 'a systemd unit name with its type, e.g. "nginx.service"')
      .describe('Unit name, e.g. "nginx.service". Passes when its ActiveState is "active" (Manager.GetUnit, then the Unit\'s ActiveState property).'),
    busAddress: z
      .string()
      .regex(/^(unix|tcp):/, 'a D-Bus address such as unix:path=/run/dbus/system_bus_socket')
      .optional()
      .describe('D-Bus address to ask; defaults to the system bus (DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket).'),
  })
  .describe('systemd unit health check');
export type SystemdUnitCheckSpec = z.infer<typeof SystemdUnitCheckSpec>;

export const MqttBrokerCheckSpec = z
  .strictObject({
    kind: z
      .literal('mqtt-broker')
      .describe(
        "Connects to the agent's MQTT broker with the agent's own settings (URL, TLS, credentials) and passes on CONNACK; then disconnects.",
      ),
    ...commonFields,
  })
  .describe('MQTT broker reachability health check');
export type MqttBrokerCheckSpec = z.infer<typeof MqttBrokerCheckSpec>;

export const ScriptDirCheckSpec = z
  .strictObject({
    kind: z
      .literal('script-dir')
      .describe('Runs every executable in a directory in lexical order, without a shell (greenboot-style check folders).'),
    ...commonFields,
    path: z
      .string()
      .min(2)
      .max(4096)
      .regex(/^\//, 'an absolute path')
      .describe('Directory holding the scripts, e.g. /etc/greenboot/check/required.d.'),
    mode: z
      .enum(['required', 'wanted'])
      .default('required')
      .describe(
        'required: the first failing script fails the check (later scripts do not run). wanted: every script runs; failures are listed but the check passes.',
      ),
  })
  .describe('Script directory health check');
export type ScriptDirCheckSpec = z.infer<typeof ScriptDirCheckSpec>;

export const HealthCheckSpec = z
  .discriminatedUnion('kind', [
    CommandCheckSpec,
    HttpCheckSpec,
    TcpCheckSpec,
    SystemdUnitCheckSpec,
    MqttBrokerCheckSpec,
    ScriptDirCheckSpec,
  ])
  .describe('A declarative health check run on the first boot of a new slot before the update is committed.');
/** A parsed check, defaults applied. */
export type HealthCheckSpec = z.infer<typeof HealthCheckSpec>;
/** A check as written in config, defaults optional. */
export type HealthCheckSpecInput = z.input<typeof HealthCheckSpec>;

export const HealthCheckKind = z.enum(['command', 'http', 'tcp', 'systemd-unit', 'mqtt-broker', 'script-dir']);
export type HealthCheckKind = z.infer<typeof HealthCheckKind>;

export const HealthCheckResult = z
  .object({
    name: z.string().describe('Check name from config.'),
    kind: HealthCheckKind,
    required: z.boolean().describe('Whether a failure of this check fails the verdict.'),
    passed: z.boolean(),
    attempts: z.int().min(0).describe('Attempts made, at most 1 + retries.'),
    durationMs: z.int().min(0).describe('Wall time for all attempts including pauses between them.'),
    outputTail: z
      .string()
      .describe('Last ~2 KiB of the final attempt: stdout+stderr, the response body, or the error text.'),
    error: z.string().optional().describe('Why the final attempt failed, e.g. "exit code 3, expected 0".'),
  })
  .describe('Outcome of one health check');
export type HealthCheckResult = z.infer<typeof HealthCheckResult>;

export const JournalTail = z
  .object({
    source: z
      .enum(['journal', 'agent-log'])
      .describe("journal: `journalctl -b 0`; agent-log: the agent's own recent log lines (journalctl missing or failing)."),
    lines: z.array(z.string()).describe('Oldest first.'),
    note: z.string().optional().describe('Why the journal was not used, when source is agent-log.'),
  })
  .describe('The last log lines of the current boot, collected when a verdict fails');
export type JournalTail = z.infer<typeof JournalTail>;

export const HealthVerdict = z
  .object({
    passed: z.boolean().describe('false iff any required check failed.'),
    startedAt: z.iso.datetime().describe('When the run started (ISO 8601, UTC).'),
    finishedAt: z.iso.datetime().describe('When the run finished (ISO 8601, UTC).'),
    results: z.array(HealthCheckResult).describe('One result per check, in declared order.'),
    failed: z.array(z.string()).describe('Names of the required checks that failed.'),
    journalTail: JournalTail.optional().describe('Only on a failed verdict (when configured): the last log lines of this boot.'),
  })
  .describe('Outcome of a full health check run');
export type HealthVerdict = z.infer<typeof HealthVerdict>;

/** The `health` section of the agent config: timing around the whole run and what a failure records. */
export const HealthSettings = z
  .strictObject({
    graceSeconds: z
      .int()
      .min(0)
      .max(3600)
      .default(0)
      .describe('Seconds after boot (kernel uptime) before the first check runs; later runs do not wait.'),
    deadlineSeconds: z
      .int()
      .min(1)
      .max(86_400)
      .default(300)
      .describe('Budget for all checks of one run, counted from the first check; on expiry the check in progress and all remaining ones fail with "deadline exceeded".'),
    journalLines: z
      .int()
      .min(0)
      .max(1000)
      .default(50)
      .describe("Lines of this boot's journal (or of the agent's own log) stored with a failed verdict; 0 turns it off."),
  })
  .describe('Timing and diagnostics of health check runs');
export type HealthSettings = z.infer<typeof HealthSettings>;
export const HEALTH_SETTINGS_DEFAULTS: HealthSettings = { graceSeconds: 0, deadlineSeconds: 300, journalLines: 50 };
