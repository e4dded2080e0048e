// Config validation (every problem named, nothing starts on a bad config), secret redaction in logs,
// and the store's transactional outbox.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { trustPolicy } from '../../src/config/trust.js';
import { generateKeyPair } from '../../src/fleet/sign.js';
import { AgentStore } from '../../src/store/agent-store.js';
import { createLogger } from '../../src/util/log.js';
import { createBackend } from '../../src/backends/registry.js';
import type { UpdateRecord } from '../../src/core/update-record.js';

const key = generateKeyPair();
const base = () => ({
  deviceId: 'dev-1',
  compatible: 'acme-gw',
  stateDir: '/var/lib/ota-agent',
  mqtt: { url: 'mqtts://broker.example:8883' },
  trust: { keys: [{ publicKeyPem: key.publicKeyPem }] },
  backend: { type: 'simulated', dir: '/tmp/x' },
});

describe('config', () => {
  it('applies defaults', () => {
    const c = parseConfig(base());
    expect(c.topicPrefix).toBe('ota/v1');
    expect(c.channels).toEqual(['stable']);
    expect(c.mqtt.protocolVersion).toBe(5);
    expect(c.artifacts.allowedSchemes).toEqual(['https']);
    expect(c.limits.maxMessageBytes).toBe(65_536);
  });
  it.each([
    ['unknown field', { ...base(), colour: 'red' }, /colour|unrecognized/i],
    ['bad device id', { ...base(), deviceId: '../etc' }, /deviceId/],
    ['relative stateDir', { ...base(), stateDir: 'state' }, /stateDir: an absolute path/],
    ['topic wildcard', { ...base(), topicPrefix: 'ota/#' }, /topicPrefix/],
    ['plaintext without opt-in', { ...base(), mqtt: { url: 'mqtt://broker:1883' } }, /not encrypted/],
    ['unknown health check kind', { ...base(), healthChecks: [{ kind: 'ping', name: 'x' }] }, /healthChecks/],
    ['no trusted key', { ...base(), trust: { keys: [] } }, /trust\.keys/],
    ['both key forms', { ...base(), trust: { keys: [{ publicKeyPem: key.publicKeyPem, publicKeyFile: '/k.pub' }] } }, /exactly one/],
  ])('rejects %s with a specific message', (_n, value, pattern) => {
    expect(() => parseConfig(value)).toThrow(ConfigError);
    expect(() => parseConfig(value)).toThrow(pattern);
  });
  it('rejects a key that is not Ed25519, and a threshold above the key count', () => {
    expect(() => trustPolicy(parseConfig({ ...base(), trust: { keys: [{ publicKeyPem: '-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----' }] } }))).toThrow(/trust\.keys\.0/);
    expect(() => trustPolicy(parseConfig({ ...base(), trust: { keys: [{ publicKeyPem: key.publicKeyPem }], threshold: 2 } }))).toThrow(/threshold 2 exceeds/);
  });
  it('rejects an unknown backend type and bad backend options', async () => {
    await expect(createBackend(parseConfig({ ...base(), backend: { type: 'floppy' } }))).rejects.toThrow(/backend.type "floppy" is unknown/);
    await expect(createBackend(parseConfig({ ...base(), backend: { type: 'simulated', dir: 'relative' } }))).rejects.toThrow(/backend: dir/);
  });
});

describe('logs', () => {
  it('redacts secrets', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (c, _e, cb) => { lines.push(String(c)); cb(); } });
    const log = createLogger('info', 'test', sink);
    log.info({ mqtt: { url: 'mqtts://b', password: 'hunter2' }, password: 'pw', headers: { authorization: 'Bearer abc' } }, 'connecting');
    await new Promise((r) => setImmediate(r));
    const out = lines.join('');
    expect(out).toContain('connecting');
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('Bearer abc');
    expect(out).not.toContain('"pw"');
    expect(out).toContain('[redacted]');
  });
});

describe('store', () => {
  const rec = (state: UpdateRecord['state']): UpdateRecord => ({ updateId: 'u1', kind: 'update', state, fromVersion: '1.0.0', toVersion: '1.1.0', bootId: 'b1', transitions: 1, resumes: 0, startedAt: 't', updatedAt: 't' });
  const ev = (id: string) => ({ eventId: id, deviceId: 'd', at: new Date().toISOString(), type: 'transition' as const });

  it('commits record, transition and events together, numbering events per device', () => {
    const s = new AgentStore(join(mkdtempSync(join(tmpdir(), 'ota-store-')), 'a.db'));
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    const out = s.commitTransition({ record: rec('accepted'), transition: { updateId: 'u1', from: 'idle', event: 'ACCEPT', to: 'accepted', at: 't' }, topic: 'x/events', events: [ev('e1')] });
    expect(out.map((e) => e.seq)).toEqual([1]);
    s.commitTransition({ record: rec('downloading'), transition: { updateId: 'u1', from: 'accepted', event: 'PROCEED', to: 'downloading', at: 't' }, topic: 'x/events', events: [ev('e2')] });
    expect(s.current()?.state).toBe('downloading');
    expect(s.outboxPeek(10).map((r) => [r.seq, r.eventId])).toEqual([[1, 'e1'], [2, 'e2']]);
    s.outboxAck(1);
    s.outboxAck(2);
    // Numbers keep growing after the outbox empties: consumers never see a sequence reused.
    expect(s.recordEvent('x/events', ev('e3')).seq).toBe(3);
    s.close();
  });

  it('rolls everything back when any part of a transition fails', () => {
    const s = new AgentStore(join(mkdtempSync(join(tmpdir(), 'ota-store-')), 'a.db'));
    s.commitTransition({ record: rec('accepted'), transition: { updateId: 'u1', from: 'idle', event: 'ACCEPT', to: 'accepted', at: 't' }, topic: 'x/events', events: [ev('dup')] });
    // A duplicate event id violates the outbox's UNIQUE constraint: the record must not move either.
    expect(() => s.commitTransition({ record: rec('downloading'), transition: { updateId: 'u1', from: 'accepted', event: 'PROCEED', to: 'downloading', at: 't' }, topic: 'x/events', events: [ev('dup')] })).toThrow();
    expect(s.current()?.state).toBe('accepted');
    expect(s.transitions('u1')).toHaveLength(1);
    expect(s.outboxSize()).toBe(1);
    s.close();
  });
});
