// The published contract must not drift from the code: schemas/*.schema.json must be exactly what
// the zod schemas generate now, the examples in docs/ must parse with the schemas the agent uses,
// and docs/protocol.md must name every lifecycle row and reason code the code has.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type * as z from 'zod';
import { parseConfig } from '../../src/config/load.js';
import { FAILURE_REASONS, REJECT_REASONS } from '../../src/core/reasons.js';
import { STATES, TRANSITIONS } from '../../src/core/transitions.js';
import { keyIdOf, loadPublicKey, pae, verifyEnvelope } from '../../src/crypto/dsse.js';
import { Announcement } from '../../src/schemas/announcement.js';
import { Command } from '../../src/schemas/command.js';
import { DeviceEvent, DeviceState } from '../../src/schemas/device-messages.js';
import { ANNOUNCEMENT_TYPE, Envelope } from '../../src/schemas/envelope.js';
import { jsonSchemas, renderSchema } from '../../src/schemas/export.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const schemasDir = join(root, 'schemas');
const examplesDir = join(root, 'docs', 'examples');
const REGENERATE = 'schemas/ is out of date: run `npm run build && npm run schemas` and commit the result';

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(join(examplesDir, file), 'utf8'));
}

/** Parses or fails with the zod issues in the message, so a drifted example says what drifted. */
function parseExample<T>(schema: z.ZodType<T>, file: string): T {
  const r = schema.safeParse(readJson(file));
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    expect.fail(`docs/examples/${file} no longer matches its schema: ${issues}`);
  }
  return r.data;
}

describe('schemas/ matches the zod schemas', () => {
  const expected = jsonSchemas();

  it('has exactly the generated files, byte for byte', () => {
    const present = existsSync(schemasDir) ? readdirSync(schemasDir).sort() : [];
    const problems: string[] = [];
    for (const [file, schema] of Object.entries(expected)) {
      if (!present.includes(file)) problems.push(`missing: schemas/${file}`);
      else if (readFileSync(join(schemasDir, file), 'utf8') !== renderSchema(schema)) problems.push(`differs: schemas/${file}`);
    }
    for (const file of present) if (!(file in expected)) problems.push(`extra: schemas/${file}`);
    expect(problems, REGENERATE).toEqual([]);
  });

  it('gives every schema its $id and a title', () => {
    for (const [file, schema] of Object.entries(expected)) {
      expect(schema).toMatchObject({ $id: `https://ota-agent.dev/schemas/${file}`, title: expect.any(String) });
    }
  });

  it('describes the input side: fields with defaults are optional', () => {
    const config = expected['config.schema.json'] as { required: string[] };
    expect(config.required).not.toContain('channels');
    expect(config.required).toContain('deviceId');
  });
});

describe('docs/examples parse with the schemas the agent uses', () => {
  it('covers every example file', () => {
    const covered = [
      'announcement-payload.json',
      'announcement-envelope.json',
      'fleet-example.pub',
      'command-payload.json',
      'device-state.json',
      'device-event-transition.json',
      'device-event-committed.json',
      'device-event-reverted.json',
      'device-event-rejected.json',
      'config.json',
    ];
    expect(readdirSync(examplesDir).sort()).toEqual([...covered].sort());
  });

  it('announcement payload', () => {
    const a = parseExample(Announcement, 'announcement-payload.json');
    expect(a.rollout.window?.applies).toBe('install');
  });

  it('announcement envelope: signed over the payload example, verifies with fleet-example.pub', () => {
    const env = parseExample(Envelope, 'announcement-envelope.json');
    expect(env.payloadType).toBe(ANNOUNCEMENT_TYPE);
    const payload = Buffer.from(env.payload, 'base64');
    expect(JSON.parse(payload.toString('utf8'))).toEqual(readJson('announcement-payload.json'));
    expect(Announcement.safeParse(JSON.parse(payload.toString('utf8'))).success).toBe(true);

    const key = loadPublicKey(readFileSync(join(examplesDir, 'fleet-example.pub'), 'utf8'));
    const keyid = keyIdOf(key);
    expect(env.signatures.map((s) => s.keyid)).toEqual([keyid]);
    expect(verifyEnvelope(env, payload, new Map([[keyid, key]]))).toEqual({ ok: true, keyids: [keyid] });
  });

  it('command payload', () => {
    expect(parseExample(Command, 'command-payload.json').command).toBe('cancel');
  });

  it('device state', () => {
    const s = parseExample(DeviceState, 'device-state.json');
    expect(s.update?.state).toBe(s.state);
  });

  it('device events', () => {
    const transition = parseExample(DeviceEvent, 'device-event-transition.json');
    expect(transition).toMatchObject({ type: 'transition', to: 'deferred', trigger: 'WAIT_WINDOW' });
    expect(transition.deferredUntil).toBeDefined();

    expect(parseExample(DeviceEvent, 'device-event-committed.json')).toMatchObject({ type: 'transition', to: 'committed', result: 'committed' });

    const reverted = parseExample(DeviceEvent, 'device-event-reverted.json');
    expect(reverted).toMatchObject({ type: 'transition', to: 'reverted', result: 'reverted', reason: 'HEALTH_CHECK_FAILED' });
    expect(reverted.checks?.passed).toBe(false);

    expect(parseExample(DeviceEvent, 'device-event-rejected.json')).toMatchObject({ type: 'rejected', result: 'rejected' });
  });

  it('config passes parseConfig (schema plus the TLS rule)', () => {
    const c = parseConfig(readJson('config.json'), 'docs/examples/config.json');
    expect(c.mqtt.url.startsWith('mqtts://')).toBe(true);
    expect(c.mqtt.tls?.caFile).toBeDefined();
  });
});

describe('docs/protocol.md names what the code has', () => {
  const doc = readFileSync(join(root, 'docs', 'protocol.md'), 'utf8');

  it('renders every lifecycle transition as a table row', () => {
    const missing = TRANSITIONS.map(([from, event, to]) => `| \`${from}\` | \`${event}\` | \`${to}\` |`).filter((row) => !doc.includes(row));
    expect(missing, 'docs/protocol.md: lifecycle table rows missing').toEqual([]);
    for (const s of STATES) expect(doc).toContain(`\`${s}\``);
  });

  it('explains every reason code', () => {
    const missing = [...REJECT_REASONS, ...FAILURE_REASONS].filter((r) => !doc.includes(`| \`${r}\` |`));
    expect(missing, 'docs/protocol.md: reason codes missing from the tables').toEqual([]);
  });

  it('shows the PAE byte example the code produces', () => {
    const bytes = pae(ANNOUNCEMENT_TYPE, Buffer.from('{"hello":"world"}', 'utf8')).toString('utf8');
    expect(doc).toContain(bytes);
  });
});
