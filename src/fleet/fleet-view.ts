// What a fleet consumer knows about the devices, built from their MQTT messages: the retained
// state and online flag, and the events seen. Pure (no I/O): `ota-fleet watch`, `ota-fleet
// simulate` and the tests feed it messages and ask for rows and summaries.
//
// How one device's outcome for an announcement is decided (docs/fleet.md):
//   - facts are the device's events for that update id (a step with a result is final, other steps
//     mean "in flight") and its retained state (`update.id` = in flight, `lastResult.updateId` =
//     final); the newest fact by its `at` wins, a final one wins a tie;
//   - `rejected` only when there is no such fact: a device that refused a stale or duplicate copy
//     but carried out the update counts by what it did, not by the refusal.
// Events are not retained, so a watcher that starts late sees earlier outcomes only through the
// retained state (`lastResult` keeps the last finished update); rejections it did not see live are
// not counted.
import { inRollout } from '../core/rollout.js';
import type { Announcement } from '../schemas/announcement.js';
import type { DeviceEvent, DeviceState } from '../schemas/device-messages.js';

export const FINAL_RESULTS = ['committed', 'reverted', 'failed', 'cancelled'] as const;
export type FinalResult = (typeof FINAL_RESULTS)[number];

export type DeviceOutcome =
  | { kind: FinalResult; reason?: string; at: string; source: 'event' | 'state' }
  | { kind: 'pending'; state: string; at: string }
  | { kind: 'rejected'; reason?: string; at: string };

interface Fact {
  at: number;
  kind: FinalResult | 'pending';
  reason?: string;
  state?: string;
  iso: string;
  source: 'event' | 'state';
}

interface Entry {
  id: string;
  online: boolean | null;
  state: DeviceState | null;
  lastEvent: DeviceEvent | null;
  lastRejection: { at: string; reason?: string; updateId?: string } | null;
  recentEventIds: string[];
  /** Facts about the tracked announcement from events. */
  eventFact: Fact | null;
  rejection: { at: string; reason?: string } | null;
}

export interface DeviceRow {
  id: string;
  online: boolean | null;
  state: DeviceState | null;
  lastEvent: DeviceEvent | null;
  lastRejection: { at: string; reason?: string; updateId?: string } | null;
}

export interface AnnouncementSummary {
  id: string;
  version?: string;
  percent?: number;
  committed: number;
  reverted: number;
  failed: number;
  cancelled: number;
  rejected: number;
  /** In flight (any non-final state, including deferred). */
  pending: number;
  /** Of pending: waiting for a maintenance window. */
  deferred: number;
  /** No sign of it yet although the bucket is inside the rollout (needs the announcement). */
  waiting: number;
  /** Bucket outside the rollout (needs the announcement). */
  notInRollout: number;
  /** Already running the announced version, with no record of this update. */
  upToDate: number;
  /** No record, and nothing known to place the device (another device class, or the announcement unknown). */
  none: number;
  /** Reason codes of non-committed outcomes and of rejections, counted per device. */
  reasons: Record<string, number>;
}

export interface FleetSummary {
  at: string;
  devices: number;
  online: number;
  states: Record<string, number>;
  versions: Record<string, number>;
  announcement?: AnnouncementSummary;
}

export interface ViewCounters {
  messages: number;
  events: number;
  duplicateEvents: number;
  malformed: number;
  /** Messages by topic kind (state, events, online). */
  byKind: Record<string, number>;
}

const RECENT_EVENT_IDS = 64;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const time = (iso: string | undefined): number => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
};
const sorted = (m: Map<string, number>): Record<string, number> => Object.fromEntries([...m.entries()].sort(([a], [b]) => a.localeCompare(b)));

/** Newer fact wins; on a tie a final result beats "in flight", and an event beats the state. */
function newer(a: Fact | null, b: Fact | null): Fact | null {
  if (!a) return b;
  if (!b) return a;
  if (b.at !== a.at) return b.at > a.at ? b : a;
  if ((a.kind === 'pending') !== (b.kind === 'pending')) return b.kind !== 'pending' ? b : a;
  return a.source === 'event' ? a : b;
}

export class FleetView {
  private readonly entries = new Map<string, Entry>();
  private announcement: Announcement | null = null;
  readonly counters: ViewCounters = { messages: 0, events: 0, duplicateEvents: 0, malformed: 0, byKind: {} };

  constructor(readonly announcementId?: string) {}

  /** The tracked announcement itself (e.g. from its retained topic): lets the summary place idle devices. */
  setAnnouncement(a: Announcement | null): boolean {
    if (a && this.announcementId && a.id !== this.announcementId) return false;
    this.announcement = a;
    return true;
  }

  get knownAnnouncement(): Announcement | null {
    return this.announcement;
  }

  private entry(id: string): Entry {
    let e = this.entries.get(id);
    if (!e) {
      e = { id, online: null, state: null, lastEvent: null, lastRejection: null, recentEventIds: [], eventFact: null, rejection: null };
      this.entries.set(id, e);
    }
    return e;
  }

  /** One MQTT message from `<prefix>/devices/<id>/<kind>`; returns whether anything changed. */
  applyMessage(deviceId: string, kind: string, payload: Uint8Array): boolean {
    this.counters.messages++;
    this.counters.byKind[kind] = (this.counters.byKind[kind] ?? 0) + 1;
    if (payload.byteLength === 0) {
      // An empty retained message clears the topic.
      if (kind === 'state') return this.applyState(deviceId, null);
      if (kind === 'online') return this.applyOnline(deviceId, null);
      return false;
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(payload).toString('utf8'));
    } catch {
      this.counters.malformed++;
      return false;
    }
    if (!isObject(body)) {
      this.counters.malformed++;
      return false;
    }
    if (kind === 'state') {
      if (typeof body.state !== 'string' || typeof body.at !== 'string') return this.malformed();
      return this.applyState(deviceId, body as unknown as DeviceState);
    }
    if (kind === 'online') {
      if (typeof body.online !== 'boolean') return this.malformed();
      return this.applyOnline(deviceId, body.online);
    }
    if (kind === 'events') {
      if (typeof body.eventId !== 'string' || typeof body.type !== 'string' || typeof body.at !== 'string') return this.malformed();
      return this.applyEvent({ ...(body as unknown as DeviceEvent), deviceId });
    }
    return false;
  }

  private malformed(): false {
    this.counters.malformed++;
    return false;
  }

  applyState(deviceId: string, state: DeviceState | null): boolean {
    const e = this.entry(deviceId);
    // Latest wins by `at`: a late retained copy must not roll the view back.
    if (state && e.state && time(state.at) < time(e.state.at)) return false;
    e.state = state;
    return true;
  }

  applyOnline(deviceId: string, online: boolean | null): boolean {
    const e = this.entry(deviceId);
    if (e.online === online) return false;
    e.online = online;
    return true;
  }

  applyEvent(ev: DeviceEvent): boolean {
    const e = this.entry(ev.deviceId);
    // At least once: the same event can arrive twice (same eventId).
    if (e.recentEventIds.includes(ev.eventId)) {
      this.counters.duplicateEvents++;
      return false;
    }
    e.recentEventIds.push(ev.eventId);
    if (e.recentEventIds.length > RECENT_EVENT_IDS) e.recentEventIds.shift();
    this.counters.events++;
    if (!e.lastEvent || ev.seq > e.lastEvent.seq) e.lastEvent = ev;
    if (ev.type === 'rejected') e.lastRejection = { at: ev.at, ...(ev.reason ? { reason: ev.reason } : {}), ...(ev.updateId ? { updateId: ev.updateId } : {}) };
    if (this.announcementId && ev.updateId === this.announcementId) {
      if (ev.type === 'transition') {
        const final = ev.result && (FINAL_RESULTS as readonly string[]).includes(ev.result);
        const fact: Fact = final
          ? { at: time(ev.at), iso: ev.at, source: 'event', kind: ev.result as FinalResult, ...(ev.reason ? { reason: ev.reason } : {}) }
          : { at: time(ev.at), iso: ev.at, source: 'event', kind: 'pending', state: ev.to ?? '?' };
        e.eventFact = newer(e.eventFact, fact);
      } else if (ev.type === 'rejected') {
        if (!e.rejection || time(ev.at) >= time(e.rejection.at)) e.rejection = { at: ev.at, ...(ev.reason ? { reason: ev.reason } : {}) };
      }
    }
    return true;
  }

  /** What the device did with the tracked announcement, or null (no record of it). */
  outcome(deviceId: string): DeviceOutcome | null {
    const e = this.entries.get(deviceId);
    if (!e || !this.announcementId) return null;
    const id = this.announcementId;
    let fact = e.eventFact;
    const s = e.state;
    if (s?.update && s.update.id === id) fact = newer(fact, { at: time(s.at), iso: s.at, source: 'state', kind: 'pending', state: s.update.state });
    if (s?.lastResult && s.lastResult.updateId === id && (FINAL_RESULTS as readonly string[]).includes(s.lastResult.result)) {
      fact = newer(fact, { at: time(s.lastResult.at), iso: s.lastResult.at, source: 'state', kind: s.lastResult.result as FinalResult, ...(s.lastResult.reason ? { reason: s.lastResult.reason } : {}) });
    }
    if (fact) {
      if (fact.kind === 'pending') return { kind: 'pending', state: fact.state ?? '?', at: fact.iso };
      return { kind: fact.kind, at: fact.iso, source: fact.source, ...(fact.reason ? { reason: fact.reason } : {}) };
    }
    if (e.rejection) return { kind: 'rejected', at: e.rejection.at, ...(e.rejection.reason ? { reason: e.rejection.reason } : {}) };
    return null;
  }

  get size(): number {
    return this.entries.size;
  }

  deviceIds(): string[] {
    return [...this.entries.keys()].sort(compareIds);
  }

  row(deviceId: string): DeviceRow | undefined {
    const e = this.entries.get(deviceId);
    return e ? { id: e.id, online: e.online, state: e.state, lastEvent: e.lastEvent, lastRejection: e.lastRejection } : undefined;
  }

  rows(): DeviceRow[] {
    return this.deviceIds().map((id) => this.row(id) as DeviceRow);
  }

  summary(now: Date = new Date()): FleetSummary {
    const states = new Map<string, number>();
    const versions = new Map<string, number>();
    let online = 0;
    for (const e of this.entries.values()) {
      if (e.online) online++;
      const st = e.state?.state ?? 'unknown';
      states.set(st, (states.get(st) ?? 0) + 1);
      if (e.state) versions.set(e.state.runningVersion, (versions.get(e.state.runningVersion) ?? 0) + 1);
    }
    const out: FleetSummary = { at: now.toISOString(), devices: this.entries.size, online, states: sorted(states), versions: sorted(versions) };
    if (this.announcementId) out.announcement = this.announcementSummary(this.announcementId);
    return out;
  }

  private announcementSummary(id: string): AnnouncementSummary {
    const a = this.announcement;
    const s: AnnouncementSummary = {
      id,
      ...(a ? { version: a.version, percent: a.rollout.percent } : {}),
      committed: 0, reverted: 0, failed: 0, cancelled: 0, rejected: 0, pending: 0, deferred: 0, waiting: 0, notInRollout: 0, upToDate: 0, none: 0,
      reasons: {},
    };
    const reasons = new Map<string, number>();
    for (const e of this.entries.values()) {
      const o = this.outcome(e.id);
      if (o) {
        if (o.kind === 'pending') {
          s.pending++;
          if (o.state === 'deferred' || o.state === 'reboot-deferred') s.deferred++;
        } else {
          s[o.kind]++;
          if (o.reason) reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
        }
        continue;
      }
      const st = e.state;
      if (!a || !st || st.compatible !== a.compatible) s.none++;
      else if (st.runningVersion === a.version) s.upToDate++;
      else if (inRollout(e.id, [], a.id, { percent: a.rollout.percent }).included) s.waiting++;
      else s.notInRollout++;
    }
    s.reasons = sorted(reasons);
    return s;
  }
}

/** Natural order: dev-2 before dev-10. */
export function compareIds(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
