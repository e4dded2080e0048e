// The history is bounded (limits.historyKeep): recording a finished update deletes the oldest rows
// and their transitions in the same SQLite transaction, never the transitions of the update in
// flight; a pruned reverted id still counts for PREVIOUSLY_REVERTED; the CLI reads a pruned
// database. Real SQLite files (WAL) in a temp directory.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { UpdateRecord } from '../../src/core/update-record.js';
import { generateKeyPair } from '../../src/fleet/sign.js';
import { AgentStore, DEFAULT_HISTORY_KEEP } from '../../src/store/agent-store.js';
import { MIGRATIONS } from '../../src/store/migrations.js';

const run = promisify(execFile);
const AGENT = join(process.cwd(), 'dist/cli/ota-agent.js');

const tmpDb = (): string => join(mkdtempSync(join(tmpdir(), 'ota-history-')), 'agent.db');
const rec = (id: string, state: UpdateRecord['state']): UpdateRecord => ({
  updateId: id, kind: 'update', state, fromVersion: '1.0.0', toVersion: '1.1.0', bootId: 'b1', transitions: 1, resumes: 0, startedAt: 't', updatedAt: 't',
});
let eventNo = 0;
const ev = () => ({ eventId: `e${++eventNo}`, deviceId: 'd', at: new Date().toISOString(), type: 'transition' as const });

/** One whole update as the agent commits it: three steps, the history row at the terminal one, then CLOSE. */
function finishUpdate(s: AgentStore, id: string, result: 'committed' | 'reverted' | 'failed' = 'committed'): void {
  s.commitTransition({ record: rec(id, 'accepted'), transition: { updateId: id, from: 'idle', event: 'ACCEPT', to: 'accepted', at: 't' }, topic: 'x/events', events: [ev()] });
  s.commitTransition({ record: rec(id, 'downloading'), transition: { updateId: id, from: 'accepted', event: 'PROCEED', to: 'downloading', at: 't' }, topic: 'x/events', events: [ev()] });
  s.commitTransition({
    record: rec(id, result),
    transition: { updateId: id, from: 'downloading', event: 'DONE', to: result, at: 't' },
    topic: 'x/events',
    events: [ev()],
    history: { updateId: id, kind: 'update', fromVersion: '1.0.0', toVersion: '1.1.0', result, reason: null, message: result, startedAt: 't', finishedAt: 't' },
  });
  s.commitTransition({ record: null, transition: { updateId: id, from: result, event: 'CLOSE', to: 'idle', at: 't' }, topic: 'x/events', events: [] });
}

const historyCount = (s: AgentStore): number => (s.db.prepare('SELECT COUNT(*) AS n FROM history').get() as { n: number }).n;

describe('history retention (limits.historyKeep)', () => {
  it('keeps exactly the newest N updates with all their transitions; older ones and their transitions are gone', () => {
    const s = new AgentStore(tmpDb(), { historyKeep: 10 });
    for (let i = 0; i < 25; i++) finishUpdate(s, `u${i}`);
    expect(historyCount(s)).toBe(10);
    expect(s.history(100).map((h) => h.updateId)).toEqual(Array.from({ length: 10 }, (_, k) => `u${24 - k}`));
    for (let i = 15; i < 25; i++) expect(s.transitions(`u${i}`).map((t) => t.event), `u${i}`).toEqual(['ACCEPT', 'PROCEED', 'DONE', 'CLOSE']);
    for (let i = 0; i < 15; i++) expect(s.transitions(`u${i}`), `u${i}`).toEqual([]);
    expect((s.db.prepare('SELECT COUNT(*) AS n FROM transitions').get() as { n: number }).n).toBe(40);
    expect(s.db.pragma('integrity_check', { simple: true })).toBe('ok');
    s.close();
  });

  it('below the cap nothing is deleted; the default cap is 100', () => {
    const s = new AgentStore(tmpDb());
    for (let i = 0; i < 12; i++) finishUpdate(s, `u${i}`);
    expect(historyCount(s)).toBe(12);
    expect(s.transitions('u0')).toHaveLength(4);
    expect(DEFAULT_HISTORY_KEEP).toBe(100);
    expect(parseConfig({ deviceId: 'd', compatible: 'c', stateDir: '/var/lib/x', mqtt: { url: 'mqtts://b' }, trust: { keys: [{ publicKeyPem: generateKeyPair().publicKeyPem }] }, backend: { type: 'simulated', dir: '/tmp/x' } }).limits.historyKeep).toBe(100);
    s.close();
  });

  it('never deletes the transitions of the update in flight, even when it shares an id with a pruned row', () => {
    const s = new AgentStore(tmpDb(), { historyKeep: 10 });
    finishUpdate(s, 'retried', 'failed'); // the oldest row: pruned below
    for (let i = 0; i < 9; i++) finishUpdate(s, `u${i}`);
    // The same id is tried again and is in flight while another update's history row is written.
    s.commitTransition({ record: rec('retried', 'accepted'), transition: { updateId: 'retried', from: 'idle', event: 'ACCEPT', to: 'accepted', at: 't' }, topic: 'x/events', events: [ev()] });
    s.commitTransition({
      record: rec('retried', 'downloading'),
      transition: { updateId: 'retried', from: 'accepted', event: 'PROCEED', to: 'downloading', at: 't' },
      topic: 'x/events',
      events: [ev()],
      history: { updateId: 'other', kind: 'update', fromVersion: '1.0.0', toVersion: '1.1.0', result: 'failed', reason: null, message: 'x', startedAt: 't', finishedAt: 't' },
    });
    expect(historyCount(s)).toBe(10);
    expect(s.history(100).some((h) => h.updateId === 'retried')).toBe(false); // its old row went...
    // ...but every transition of the id in flight stays: the first try's and the running one's.
    expect(s.transitions('retried').map((t) => t.event)).toEqual(['ACCEPT', 'PROCEED', 'DONE', 'CLOSE', 'ACCEPT', 'PROCEED']);
    expect(s.current()?.updateId).toBe('retried');
    s.close();
  });

  it('keeps the transitions of an id whose newer history row is kept when its older row is pruned', () => {
    const s = new AgentStore(tmpDb(), { historyKeep: 10 });
    finishUpdate(s, 'twice', 'failed');
    for (let i = 0; i < 5; i++) finishUpdate(s, `u${i}`);
    finishUpdate(s, 'twice');
    for (let i = 5; i < 10; i++) finishUpdate(s, `u${i}`);
    expect(s.history(100).filter((h) => h.updateId === 'twice').map((h) => h.result)).toEqual(['committed']);
    expect(s.transitions('twice')).toHaveLength(8);
    s.close();
  });

  it('a reverted update still counts as reverted after its history row is pruned (PREVIOUSLY_REVERTED)', () => {
    const s = new AgentStore(tmpDb(), { historyKeep: 10 });
    finishUpdate(s, 'bad', 'reverted');
    finishUpdate(s, 'meh', 'failed');
    for (let i = 0; i < 12; i++) finishUpdate(s, `u${i}`);
    expect(s.history(100).map((h) => h.updateId)).not.toContain('bad');
    expect(s.wasReverted('bad')).toBe(true);
    expect(s.wasReverted('meh')).toBe(false);
    expect(s.wasReverted('u11')).toBe(false);
    s.close();
  });

  it('migrates a database written before retention existed (migration 1 only) and prunes it on the next update', () => {
    const path = tmpDb();
    const old = new Database(path);
    old.exec(MIGRATIONS[0] as string);
    old.pragma('user_version = 1');
    const ins = old.prepare(
      `INSERT INTO history (update_id, kind, from_version, to_version, result, reason, message, started_at, finished_at, record) VALUES (?, 'update', '1', '2', ?, NULL, 'm', 't', 't', '{}')`,
    );
    const tr = old.prepare(`INSERT INTO transitions (update_id, from_state, event, to_state, at) VALUES (?, 'a', 'E', 'b', 't')`);
    for (let i = 0; i < 30; i++) {
      ins.run(`old${i}`, i === 0 ? 'reverted' : 'committed');
      tr.run(`old${i}`);
    }
    old.close();
    const s = new AgentStore(path, { historyKeep: 10 });
    expect(s.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(historyCount(s)).toBe(30); // opening changes nothing
    finishUpdate(s, 'new');
    expect(historyCount(s)).toBe(10);
    expect(s.transitions('old20')).toHaveLength(0);
    expect(s.transitions('old21')).toHaveLength(1);
    expect(s.wasReverted('old0')).toBe(true);
    s.close();
  });

  it('ota-agent history and status read a pruned database', async () => {
    if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run npm run build first`);
    const dir = mkdtempSync(join(tmpdir(), 'ota-history-cli-'));
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
    const s = new AgentStore(join(stateDir, 'agent.db'), { historyKeep: 10 });
    for (let i = 0; i < 15; i++) finishUpdate(s, `u${i}`, i === 14 ? 'reverted' : 'committed');
    s.close();
    const configPath = join(dir, 'config.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        deviceId: 'dev-h',
        compatible: 'acme',
        stateDir,
        mqtt: { url: 'mqtts://broker.invalid:8883' },
        trust: { keys: [{ publicKeyPem: generateKeyPair().publicKeyPem }] },
        backend: { type: 'simulated', dir: join(dir, 'sim') },
        limits: { historyKeep: 10 },
      }),
    );
    const history = JSON.parse((await run(process.execPath, [AGENT, '--config', configPath, 'history', '--json', '-n', '50'])).stdout) as {
      updates: Array<{ updateId: string; transitions: unknown[] }>;
    };
    expect(history.updates.map((u) => u.updateId)).toEqual(Array.from({ length: 10 }, (_, k) => `u${14 - k}`));
    expect(history.updates.every((u) => u.transitions.length === 4)).toBe(true);
    const status = JSON.parse((await run(process.execPath, [AGENT, '--config', configPath, 'status', '--json'])).stdout) as { state: string; lastResult: { updateId: string; result: string } };
    expect(status.state).toBe('idle');
    expect(status.lastResult).toMatchObject({ updateId: 'u14', result: 'reverted' });
  });

  it('refuses a historyKeep outside 10..10000 with the path named', () => {
    const base = { deviceId: 'd', compatible: 'c', stateDir: '/var/lib/x', mqtt: { url: 'mqtts://b' }, trust: { keys: [{ publicKeyPem: generateKeyPair().publicKeyPem }] }, backend: { type: 'simulated', dir: '/tmp/x' } };
    expect(() => parseConfig({ ...base, limits: { historyKeep: 5 } })).toThrow(/limits\.historyKeep/);
    expect(() => parseConfig({ ...base, limits: { historyKeep: 10.5 } })).toThrow(/limits\.historyKeep/);
    expect(() => parseConfig({ ...base, limits: { historyKeep: 10_001 } })).toThrow(/limits\.historyKeep/);
    expect(parseConfig({ ...base, limits: { historyKeep: 10 } }).limits.historyKeep).toBe(10);
  });
});
