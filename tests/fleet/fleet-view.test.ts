// The pure parts of the fleet tools: the view/summary, rendering, promote, inventory, fault plans
// and MQTT packet framing.
import { describe, expect, it } from 'vitest';
import { rolloutBucket } from '../../src/core/rollout.js';
import { asRedelivery, encodePublish, PacketSplitter, publishTopic } from '../../src/fleet/fault-proxy.js';
import { FleetView } from '../../src/fleet/fleet-view.js';
import { devicesInGroups, parseInventory } from '../../src/fleet/inventory.js';
import { narrowing, promoteAnnouncement } from '../../src/fleet/promote.js';
import { lastResultCell, progressBar, renderDeviceTable, renderSummary } from '../../src/fleet/render.js';
import { planFaults } from '../../src/fleet/simulate.js';
import { watchSubscriptions } from '../../src/fleet/watch.js';
import type { Announcement, AnnouncementInput } from '../../src/schemas/announcement.js';
import type { DeviceEvent, DeviceState } from '../../src/schemas/device-messages.js';

const ANN = 'gw-2.0.0';
let n = 0;
const at = (s: number) => new Date(Date.UTC(2026, 10, 26, 12, 0, s)).toISOString();

function ev(deviceId: string, seq: number, t: number, e: Partial<DeviceEvent>): DeviceEvent {
  return { eventId: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`, seq, deviceId, at: at(t), type: 'transition', updateId: ANN, ...e } as DeviceEvent;
}

function state(deviceId: string, t: number, s: Partial<DeviceState> = {}): DeviceState {
  return { deviceId, at: at(t), agentVersion: '0.1.0', backend: 'simulated', compatible: 'gw', runningVersion: '1.0.0', state: 'idle', update: null, lastResult: null, ...s };
}

const inflight = (st: DeviceState['state'], t: number, progress: { phase: string; percent: number } | null = null): DeviceState['update'] => ({ id: ANN, kind: 'update', fromVersion: '1.0.0', toVersion: '2.0.0', state: st, progress, startedAt: at(t) });

describe('FleetView outcomes', () => {
  it('a final event beats earlier in-flight facts, and the retained state alone is enough', () => {
    const v = new FleetView(ANN);
    v.applyState('a', state('a', 1, { state: 'downloading', update: inflight('downloading', 1) }));
    expect(v.outcome('a')).toMatchObject({ kind: 'pending', state: 'downloading' });
    v.applyEvent(ev('a', 7, 5, { from: 'committing', to: 'committed', result: 'committed' }));
    expect(v.outcome('a')?.kind).toBe('committed');
    // A watcher that started late: only the retained state, with lastResult.
    const late = new FleetView(ANN);
    late.applyState('a', state('a', 6, { runningVersion: '2.0.0', lastResult: { updateId: ANN, version: '2.0.0', result: 'reverted', reason: 'HEALTH_CHECK_FAILED', message: 'x', at: at(5) } }));
    expect(late.outcome('a')).toMatchObject({ kind: 'reverted', reason: 'HEALTH_CHECK_FAILED' });
  });

  it('a refusal counts only when the device did nothing else with the update', () => {
    const v = new FleetView(ANN);
    v.applyEvent(ev('a', 1, 1, { from: 'idle', to: 'accepted' }));
    v.applyEvent(ev('a', 2, 2, { type: 'rejected', result: 'rejected', reason: 'REPLAYED' }));
    v.applyEvent(ev('a', 9, 9, { from: 'committing', to: 'committed', result: 'committed' }));
    v.applyEvent(ev('a', 10, 10, { type: 'rejected', result: 'rejected', reason: 'REPLAYED' }));
    expect(v.outcome('a')?.kind).toBe('committed');
    v.applyEvent(ev('b', 1, 1, { type: 'rejected', result: 'rejected', reason: 'EXPIRED' }));
    expect(v.outcome('b')).toMatchObject({ kind: 'rejected', reason: 'EXPIRED' });
    expect(v.outcome('c')).toBeNull();
  });

  it('a retry after a revert shows the newest outcome', () => {
    const v = new FleetView(ANN);
    v.applyEvent(ev('a', 5, 5, { from: 'reverting', to: 'reverted', result: 'reverted', reason: 'HEALTH_CHECK_FAILED' }));
    v.applyEvent(ev('a', 6, 20, { from: 'idle', to: 'accepted' }));
    expect(v.outcome('a')?.kind).toBe('pending');
  });

  it('de-duplicates events, ignores older retained state and malformed payloads', () => {
    const v = new FleetView(ANN);
    const e = ev('a', 1, 1, { from: 'idle', to: 'accepted' });
    expect(v.applyMessage('a', 'events', Buffer.from(JSON.stringify(e)))).toBe(true);
    expect(v.applyMessage('a', 'events', Buffer.from(JSON.stringify(e)))).toBe(false);
    expect(v.counters).toMatchObject({ events: 1, duplicateEvents: 1, messages: 2 });
    v.applyState('a', state('a', 10, { state: 'verifying' }));
    expect(v.applyState('a', state('a', 5, { state: 'downloading' }))).toBe(false);
    expect(v.row('a')?.state?.state).toBe('verifying');
    expect(v.applyMessage('a', 'state', Buffer.from('{nope'))).toBe(false);
    expect(v.applyMessage('a', 'online', Buffer.from('{"online":"yes"}'))).toBe(false);
    expect(v.counters.malformed).toBe(2);
    // An empty retained message clears.
    v.applyMessage('a', 'state', Buffer.alloc(0));
    expect(v.row('a')?.state).toBeNull();
  });

  it('summarises a rollout, placing idle devices by bucket once the announcement is known', () => {
    const ids = Array.from({ length: 40 }, (_, i) => `d${i}`);
    const inside = ids.filter((id) => rolloutBucket(id, ANN) < 50);
    const outside = ids.filter((id) => rolloutBucket(id, ANN) >= 50);
    const v = new FleetView(ANN);
    for (const id of ids) {
      v.applyState(id, state(id, 1));
      v.applyOnline(id, true);
    }
    const [c1, c2, r1, p1, d1] = inside;
    v.applyEvent(ev(c1 as string, 7, 3, { from: 'committing', to: 'committed', result: 'committed' }));
    v.applyEvent(ev(c2 as string, 7, 3, { from: 'committing', to: 'committed', result: 'committed' }));
    v.applyEvent(ev(r1 as string, 9, 3, { from: 'reverting', to: 'reverted', result: 'reverted', reason: 'BOOTLOADER_FALLBACK' }));
    v.applyState(p1 as string, state(p1 as string, 4, { state: 'installing', update: inflight('installing', 2, { phase: 'installing', percent: 40 }) }));
    v.applyState(d1 as string, state(d1 as string, 4, { state: 'deferred', update: { ...inflight('deferred', 2), deferredUntil: at(3600) } as DeviceState['update'] }));
    v.applyState(outside[0] as string, state(outside[0] as string, 4, { runningVersion: '2.0.0' }));
    v.applyOnline(outside[1] as string, false);
    const before = v.summary().announcement;
    expect(before).toMatchObject({ committed: 2, reverted: 1, pending: 2, deferred: 1, waiting: 0, notInRollout: 0, none: ids.length - 5 });
    v.setAnnouncement({ id: ANN, compatible: 'gw', version: '2.0.0', rollout: { percent: 50 } } as Announcement);
    const s = v.summary(new Date(at(100)));
    expect(s.announcement).toMatchObject({ committed: 2, reverted: 1, failed: 0, rejected: 0, pending: 2, deferred: 1, waiting: inside.length - 5, notInRollout: outside.length - 1, upToDate: 1, none: 0, reasons: { BOOTLOADER_FALLBACK: 1 } });
    expect(s).toMatchObject({ devices: 40, online: 39, at: at(100) });
    expect(s.states).toMatchObject({ idle: 38, installing: 1, deferred: 1 });
    expect(Object.keys(s.states)).toEqual([...Object.keys(s.states)].sort());
    // Another announcement id is not taken for this one.
    expect(v.setAnnouncement({ id: 'other' } as Announcement)).toBe(false);
  });
});

describe('rendering', () => {
  it('draws progress bars, a table with in-flight devices first, and summary lines', () => {
    expect(progressBar(41.7)).toBe('[####......]');
    expect(progressBar(100, 4)).toBe('[####]');
    expect(progressBar(null, 4)).toBe('      ');
    const v = new FleetView(ANN);
    v.applyState('dev-10', state('dev-10', 1, { state: 'downloading', update: inflight('downloading', 1, { phase: 'downloading', percent: 50 }) }));
    v.applyState('dev-2', state('dev-2', 1, { lastResult: { updateId: 'old', version: '1.0.0', result: 'committed', message: '', at: at(0) } }));
    v.applyState('dev-1', state('dev-1', 1));
    v.applyOnline('dev-10', true);
    v.applyEvent(ev('dev-1', 3, 2, { type: 'rejected', result: 'rejected', reason: 'BAD_SIGNATURE', updateId: undefined }));
    const lines = renderDeviceTable(v);
    expect(lines[0]).toMatch(/^DEVICE\s+ONLINE\s+STATE\s+VERSION\s+PROGRESS\s+LAST RESULT$/);
    expect(lines[1]).toMatch(/^dev-10\s+yes\s+downloading\s+1\.0\.0 -> 2\.0\.0\s+\[#####\.\.\.\.\.\]\s+50% downloading\s+-$/);
    expect(lines[2]).toMatch(/^dev-1\s+\?\s+idle\s+1\.0\.0\s+rejected BAD_SIGNATURE$/);
    expect(lines[3]).toMatch(/committed \(old\)$/);
    expect(renderDeviceTable(v, { maxRows: 1 })).toHaveLength(3);
    expect(renderDeviceTable(v, { maxRows: 1 })[2]).toBe('… 2 more device(s)');
    expect(lastResultCell({ id: 'x', online: null, state: null, lastEvent: null, lastRejection: null })).toBe('-');
    const [fleet, ann] = renderSummary(v.summary());
    expect(fleet).toBe('3 device(s), 1 online | downloading 1, idle 2 | versions: 1.0.0 3');
    expect(ann).toBe(`${ANN}: committed 0, reverted 0, failed 0, rejected 0, pending 1`);
  });
});

const base: AnnouncementInput = {
  id: ANN, sequence: 1000, issuedAt: at(0), expiresAt: new Date(Date.UTC(2026, 11, 3)).toISOString(), compatible: 'gw', channel: 'stable', version: '2.0.0',
  backend: 'rauc', artifact: { url: 'https://u.example/a.raucb', sha256: 'a'.repeat(64), size: 10 }, rollout: { percent: 10, groups: ['lab'] },
};
const now = new Date(Date.UTC(2026, 10, 27));

describe('promote', () => {
  it('widens with the same id and a higher sequence, keeping everything else', () => {
    const p = promoteAnnouncement(base, { percent: 50, groups: [] }, now);
    expect(p).toEqual({ ...base, sequence: now.getTime(), issuedAt: now.toISOString(), rollout: { percent: 50 } });
    expect(promoteAnnouncement({ ...base, sequence: now.getTime() + 5 }, { percent: 20 }, now).sequence).toBe(now.getTime() + 6);
    const w = promoteAnnouncement(base, { window: { cron: '0 2 * * *', durationMinutes: 60 } }, now);
    expect(w.rollout.window).toEqual({ cron: '0 2 * * *', durationMinutes: 60 });
    expect(promoteAnnouncement(w, { window: null }, now).rollout.window).toBeUndefined();
  });

  it('refuses to narrow without force, to do nothing, to go back in sequence or to promote an expired one', () => {
    expect(() => promoteAnnouncement(base, { percent: 5 }, now)).toThrow(/narrows the rollout \(percent 10 -> 5\).*--force/);
    expect(promoteAnnouncement(base, { percent: 5, force: true }, now).rollout.percent).toBe(5);
    expect(() => promoteAnnouncement(base, { groups: ['other'] }, now)).toThrow(/groups \[lab\] -> \[other\]/);
    expect(narrowing({ percent: 10 }, { percent: 10, groups: ['lab'] })).toHaveLength(1);
    expect(narrowing({ percent: 10, groups: ['lab'] }, { percent: 10, groups: ['lab', 'field'] })).toHaveLength(0);
    expect(() => promoteAnnouncement(base, { percent: 10 }, now)).toThrow(/nothing to change/);
    expect(() => promoteAnnouncement(base, { percent: 20, sequence: 1000 }, now)).toThrow(/sequence 1000 must be above/);
    expect(() => promoteAnnouncement(base, { percent: 101 }, now)).toThrow(/0\.\.100/);
    expect(() => promoteAnnouncement(base, { percent: 20 }, new Date(Date.UTC(2027, 0, 1)))).toThrow(/expired/);
    expect(promoteAnnouncement(base, { percent: 20, expiresAt: new Date(Date.UTC(2027, 0, 8)) }, new Date(Date.UTC(2027, 0, 1))).expiresAt).toBe('2027-01-08T00:00:00.000Z');
  });
});

describe('inventory', () => {
  it('parses ids with groups, merges repeats, selects by group and reports bad lines', () => {
    const inv = parseInventory('# fleet\ngw-1 lab, field\ngw-2\n\ngw-3 field # the roof one\ngw-2 lab\n');
    expect(inv).toEqual([{ id: 'gw-1', groups: ['lab', 'field'] }, { id: 'gw-2', groups: ['lab'] }, { id: 'gw-3', groups: ['field'] }]);
    expect(devicesInGroups(inv, ['field'])).toEqual(['gw-1', 'gw-3']);
    expect(devicesInGroups(inv, ['none'])).toEqual([]);
    expect(() => parseInventory('ok\nbad/id lab', 'inv.txt')).toThrow('inv.txt:2: "bad/id" is not a device id');
    expect(() => parseInventory('ok la+b')).toThrow(/not a group name/);
  });
});

describe('simulate fault plan', () => {
  it('assigns exact, deterministic shares; health and fallback faults are disjoint and inside the rollout', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `s-${i}`);
    const included = ids.filter((id) => rolloutBucket(id, 'x') < 50);
    const o = { failShare: 0.1, fallbackShare: 0.05, dropShare: 0.1, dupShare: 0.05, reorderShare: 0.02, seed: 's' };
    const plan = planFaults(ids, included, o);
    const count = (k: 'failHealth' | 'fallback' | 'drop' | 'dup' | 'reorder') => plan.filter((s) => s[k]).length;
    expect(count('failHealth')).toBe(Math.round(0.1 * included.length));
    expect(count('fallback')).toBe(Math.round(0.05 * included.length));
    expect(count('drop')).toBe(Math.round(0.1 * included.length));
    expect(count('dup')).toBe(10);
    expect(count('reorder')).toBe(4);
    expect(plan.filter((s) => s.failHealth && s.fallback)).toEqual([]);
    expect(plan.filter((s) => (s.failHealth || s.fallback || s.drop) && !included.includes(s.id))).toEqual([]);
    expect(planFaults(ids, included, o)).toEqual(plan);
    expect(() => planFaults(ids, included, { failShare: 2 })).toThrow(/between 0 and 1/);
  });
});

describe('MQTT framing for the fault proxy', () => {
  it('splits a stream at packet boundaries, reads PUBLISH topics, marks redeliveries', () => {
    const big = Buffer.alloc(300, 'x');
    const a = encodePublish('ota/v1/announce/gw/stable', big, 5);
    const b = encodePublish('t/2', Buffer.from('hi'), 4, true);
    const ping = Buffer.from([0xd0, 0x00]);
    const stream = Buffer.concat([a, ping, b]);
    const s = new PacketSplitter();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 7) got.push(...s.push(stream.subarray(i, i + 7)));
    expect(got.map((p) => p.toString('hex'))).toEqual([a, ping, b].map((p) => p.toString('hex')));
    // remaining length 2 + 25 (topic) + 1 (properties) + 300 = 328 = 72 + 2 * 128: two bytes
    expect(a.subarray(1, 3)).toEqual(Buffer.from([0x80 | 72, 2]));
    expect(publishTopic(a)).toBe('ota/v1/announce/gw/stable');
    expect(publishTopic(b)).toBe('t/2');
    expect(b[0]).toBe(0x31);
    expect(publishTopic(ping)).toBeNull();
    const qos1 = Buffer.from(a);
    qos1[0] = 0x32;
    expect(asRedelivery(qos1)[0]).toBe(0x3a);
    expect(asRedelivery(a)[0]).toBe(0x30);
  });

  it('subscribes to events through a shared subscription only when asked', () => {
    expect(Object.keys(watchSubscriptions('ota/v1'))).toEqual(['ota/v1/devices/+/state', 'ota/v1/devices/+/online', 'ota/v1/devices/+/events']);
    expect(Object.keys(watchSubscriptions('ota/v1', 'ingest'))).toContain('$share/ingest/ota/v1/devices/+/events');
    expect(() => watchSubscriptions('ota/v1', 'a/b')).toThrow(/share group/);
  });
});
