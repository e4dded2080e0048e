// JSON Schemas for everything on the wire and the device config, generated from the zod schemas
// (the single source of truth) and shipped in schemas/. Input side: what a publisher may send, so
// fields with defaults are optional. `npm run build && npm run schemas` regenerates the files;
// tests/unit/schemas-drift.test.ts fails when the committed files and this output disagree.
import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as z from 'zod';
import { Config } from '../config/schema.js';
import { HealthCheckSpec } from '../health/schema.js';
import { Announcement } from './announcement.js';
import { Command } from './command.js';
import { DeviceEvent, DeviceState, Online } from './device-messages.js';
import { Envelope } from './envelope.js';

export const SCHEMA_BASE_URL = 'https://ota-agent.dev/schemas/';

const SOURCES: ReadonlyArray<readonly [file: string, title: string, schema: z.ZodType]> = [
  ['envelope.schema.json', 'ota-agent DSSE envelope', Envelope],
  ['announcement.schema.json', 'ota-agent announcement (signed payload)', Announcement],
  ['command.schema.json', 'ota-agent command (signed payload)', Command],
  ['device-state.schema.json', 'ota-agent device state (retained)', DeviceState],
  ['device-event.schema.json', 'ota-agent device event', DeviceEvent],
  ['device-online.schema.json', 'ota-agent device online flag (retained, last will)', Online],
  ['config.schema.json', 'ota-agent device config', Config],
  ['health-check.schema.json', 'ota-agent health check', HealthCheckSpec],
];

/**
 * z.toJSONSchema drops refinements (`.refine`) silently, e.g. "base64 length is a multiple of 4" or
 * "exactly one of publicKeyPem or publicKeyFile". So that a validator passing a message is not
 * mistaken for the agent accepting it, every node that carries one gets a `$comment` naming the rule.
 */
function noteRefinements(ctx: { zodSchema: unknown; jsonSchema: Record<string, unknown> }): void {
  const checks = (ctx.zodSchema as { _zod?: { def?: { checks?: Array<{ _zod: { def: { check: string; error?: unknown } } }> } } })._zod?.def?.checks ?? [];
  const rules = checks
    .filter((c) => c._zod.def.check === 'custom')
    .map((c) => {
      const error = c._zod.def.error;
      let text: unknown;
      try {
        text = typeof error === 'function' ? (error as (issue: object) => unknown)({}) : undefined;
      } catch {
        text = undefined;
      }
      return typeof text === 'string' ? text : 'a custom rule';
    });
  if (rules.length > 0) ctx.jsonSchema.$comment = `Also enforced by the agent (a refinement this schema does not carry): ${rules.join('; ')}`;
}

/** File name -> JSON Schema (draft 2020-12), with `$id` and `title` first. */
export function jsonSchemas(): Record<string, object> {
  const out: Record<string, object> = {};
  for (const [file, title, schema] of SOURCES) {
    const { $schema, ...rest } = z.toJSONSchema(schema, { io: 'input', override: noteRefinements }) as Record<string, unknown>;
    out[file] = { $schema, $id: `${SCHEMA_BASE_URL}${file}`, title, ...rest };
  }
  return out;
}

/** The exact text written for a schema: 2-space JSON and a trailing newline. */
export function renderSchema(schema: object): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** Writes every schema into `dir` and removes stale *.schema.json files there. */
export function writeSchemas(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const schemas = jsonSchemas();
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.schema.json') && !(f in schemas)) unlinkSync(join(dir, f));
  }
  for (const [file, schema] of Object.entries(schemas)) writeFileSync(join(dir, file), renderSchema(schema));
  return Object.keys(schemas);
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  // dist/schemas/export.js (or src/schemas/export.ts) -> <repo>/schemas
  const dir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'schemas');
  for (const f of writeSchemas(dir)) process.stdout.write(`${join(dir, f)}\n`);
}
