// `ota-fleet simulate`: N simulated devices in this process (SimFleet) against a real broker, one
// signed announcement, fault injection, and a report of what happened and how fast. Used by the
// CLI, the fleet tests and the benchmark (bench/fleet-rollout.ts).
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inRollout } from '../core/rollout.js';
import { startArtifactServer } from '../demo/artifact-server.js';
import { topics } from '../mqtt/topics.js';
import type { AnnouncementInput } from '../schemas/announcement.js';
import { encodeSimImage } from '../simulated/image.js';
import { publishMany, publishOnce } from './broker.js';
import { FleetView, type AnnouncementSummary } from './fleet-view.js';
import { startLocalMosquitto, type LocalBroker } from './local-mosquitto.js';
import { renderAnnouncementSummary } from './render.js';
import { SimFleet, type SimDeviceSpec, type SimFleetStats } from './sim-fleet.js';
import { generateKeyPair, signAnnouncement } from './sign.js';
import { FleetWatch } from './watch.js';

export interface SimulateOptions {
  devices: number;
  /** Default: start a throw-away mosquitto. */
  brokerUrl?: string;
  protocolVersion?: 4 | 5;
  prefix?: string;
  compatible?: string;
  channel?: string;
  version?: string;
  initialVersion?: string;
  announcementId?: string;
  percent?: number;
  /** Share of the devices IN THE ROLLOUT whose new version fails its health check. */
  failShare?: number;
  /** Share of the devices in the rollout whose new slot does not boot (bootloader fallback). */
  fallbackShare?: number;
  /** Share of the devices in the rollout whose connection is cut mid-update. */
  dropShare?: number;
  /** Shares of ALL devices that get a duplicated / a reordered announcement. */
  dupShare?: number;
  reorderShare?: number;
  seed?: string;
  /** PEM private key to sign with (default: a fresh one). */
  keyPem?: string;
  /** Work directory (default: a new one under /dev/shm if present, else the temp dir). */
  dir?: string;
  keep?: boolean;
  /** Device ids are `<idPrefix><n>`; default `sim-<random>-`. */
  idPrefix?: string;
  timeoutMs?: number;
  concurrency?: number;
  /** Clear the retained announcement, state and online messages afterwards. */
  cleanup?: boolean;
  /** Progress lines (default: none). */
  onProgress?: (line: string) => void;
  progressEveryMs?: number;
}

export interface SimulateReport {
  ok: boolean;
  broker: string;
  announcementId: string;
  version: string;
  percent: number;
  devices: number;
  inRollout: number;
  faults: { failHealth: number; fallback: number; drop: number; dup: number; reorder: number };
  expected: { committed: number; revertedHealthCheck: number; revertedFallback: number; untouched: number };
  outcome: AnnouncementSummary;
  mismatches: string[];
  timedOut: boolean;
  sim: SimFleetStats;
  timing: { startupMs: number; rolloutMs: number; totalMs: number };
  messages: { total: number; events: number; state: number; online: number; duplicateEvents: number; perSecond: number };
  memory: { peakRssBytes: number; brokerPeakRssBytes: number | null };
  /** CPU seconds used during the rollout: this process, and the broker if simulate started it. */
  cpu: { processSeconds: number; brokerSeconds: number | null };
  dir: string;
}

const hashOf = (...parts: string[]) => createHash('sha256').update(parts.join('\n')).digest().readUInt32BE(0);

/** The `k` ids that come first in a seeded order: deterministic fault assignment. */
function pick(ids: readonly string[], k: number, seed: string, kind: string): Set<string> {
  return new Set([...ids].sort((a, b) => hashOf(seed, kind, a) - hashOf(seed, kind, b) || a.localeCompare(b)).slice(0, k));
}

function checkShare(name: string, v: number | undefined): number {
  const x = v ?? 0;
  if (!Number.isFinite(x) || x < 0 || x > 1) throw new Error(`${name} must be between 0 and 1, not ${v}`);
  return x;
}

/** Which devices get which fault: fail/fallback (disjoint) and drop from the devices in the rollout, dup/reorder from all. */
export function planFaults(ids: readonly string[], included: readonly string[], o: Pick<SimulateOptions, 'failShare' | 'fallbackShare' | 'dropShare' | 'dupShare' | 'reorderShare' | 'seed'>): SimDeviceSpec[] {
  const seed = o.seed ?? 'ota';
  const fail = pick(included, Math.round(checkShare('fail share', o.failShare) * included.length), seed, 'fail');
  const rest = included.filter((id) => !fail.has(id));
  const fallbackCount = Math.min(rest.length, Math.round(checkShare('fallback share', o.fallbackShare) * included.length));
  const fallback = pick(rest, fallbackCount, seed, 'fallback');
  const drop = pick(included, Math.round(checkShare('drop share', o.dropShare) * included.length), seed, 'drop');
  const dup = pick(ids, Math.round(checkShare('dup share', o.dupShare) * ids.length), seed, 'dup');
  const reorder = pick(ids, Math.round(checkShare('reorder share', o.reorderShare) * ids.length), seed, 'reorder');
  return ids.map((id) => ({
    id,
    ...(fail.has(id) ? { failHealth: true } : {}),
    ...(fallback.has(id) ? { fallback: true } : {}),
    ...(drop.has(id) ? { drop: true } : {}),
    ...(dup.has(id) ? { dup: true } : {}),
    ...(reorder.has(id) ? { reorder: true } : {}),
  }));
}

function defaultDir(): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return mkdtempSync(join(base, 'ota-fleet-sim-'));
}

const rand = () => Math.random().toString(36).slice(2, 8);

export async function runSimulation(o: SimulateOptions): Promise<SimulateReport> {
  const t0 = Date.now();
  if (!Number.isInteger(o.devices) || o.devices < 1) throw new Error(`--devices must be a positive integer, not ${o.devices}`);
  const prefix = o.prefix ?? 'ota/v1';
  const channel = o.channel ?? 'stable';
  const protocolVersion = o.protocolVersion ?? 5;
  const tag = rand();
  const compatible = o.compatible ?? `sim-${tag}`;
  const version = o.version ?? '2.0.0';
  const initialVersion = o.initialVersion ?? '1.0.0';
  const percent = o.percent ?? 100;
  const announcementId = o.announcementId ?? `${compatible}-${version}`;
  const idPrefix = o.idPrefix ?? `sim-${tag}-`;
  const width = String(o.devices).length;
  const ids = Array.from({ length: o.devices }, (_, i) => `${idPrefix}${String(i + 1).padStart(width, '0')}`);
  const included = ids.filter((id) => inRollout(id, [], announcementId, { percent }).included);
  const specs = planFaults(ids, included, o);
  const say = o.onProgress ?? (() => undefined);

  const dir = o.dir ?? defaultDir();
  // Devices keep their state in their directories: a reused one would resume an old run.
  if (existsSync(join(dir, 'devices')) && readdirSync(join(dir, 'devices')).length > 0) throw new Error(`${dir} holds devices of an earlier run; give an empty --dir`);
  mkdirSync(join(dir, 'artifacts'), { recursive: true });
  let local: LocalBroker | null = null;
  const cleanups: Array<() => Promise<void>> = [];
  try {
    if (!o.brokerUrl) local = await startLocalMosquitto();
    const brokerUrl = o.brokerUrl ?? local!.url;
    const signer: KeyObject = o.keyPem ? createPrivateKey(o.keyPem) : createPrivateKey(generateKeyPair().privateKeyPem);
    const publicKeyPem = createPublicKey(signer).export({ type: 'spki', format: 'pem' }).toString();

    // The artifact every device downloads, from a loopback HTTP server.
    const artifacts = await startArtifactServer(join(dir, 'artifacts'));
    cleanups.push(() => artifacts.close());
    const name = `${compatible}-${version}.img`;
    const bytes = encodeSimImage({ format: 'ota-sim-image/1', compatible, version, files: { health: 'ok' } });
    writeFileSync(join(dir, 'artifacts', name), bytes);
    const now = Date.now();
    const input: AnnouncementInput = {
      id: announcementId,
      sequence: now,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 24 * 3600_000).toISOString(),
      compatible,
      channel,
      version,
      description: `ota-fleet simulate: ${o.devices} devices`,
      backend: 'rauc',
      artifact: { url: artifacts.url(name), sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length },
      rollout: { percent },
    };
    const envelope = JSON.stringify(signAnnouncement(input, [signer]).envelope);
    // An older copy (lower sequence), validly signed: what a lagging publisher or a reordering bridge delivers.
    const stale = Buffer.from(JSON.stringify(signAnnouncement({ ...input, sequence: now - 1 }, [signer]).envelope));

    // The observer: the same view `ota-fleet watch` uses, fed by the broker.
    const view = new FleetView(announcementId);
    const watch = await FleetWatch.start(view, { url: brokerUrl, prefix, protocolVersion, announcements: true });
    cleanups.unshift(() => watch.close());

    say(`starting ${o.devices} simulated device(s) against ${brokerUrl} (work dir ${dir})`);
    const fleet = await SimFleet.start(
      { brokerUrl, protocolVersion, prefix, compatible, channel, dir: join(dir, 'devices'), publicKeyPem, initialVersion, staleEnvelope: stale, concurrency: o.concurrency ?? 25 },
      specs,
    );
    cleanups.unshift(() => fleet.stop());
    const up = () => ids.filter((id) => view.row(id)?.online === true && view.row(id)?.state).length;
    if (!(await waitUntil(() => up() === ids.length, 60_000))) throw new Error(`only ${up()} of ${ids.length} simulated devices came online within 60 s`);
    const tStart = Date.now();
    const startupMs = tStart - t0;
    say(`${o.devices} device(s) online after ${(startupMs / 1000).toFixed(1)} s; ${included.length} in the ${percent}% rollout of ${announcementId}`);

    const m0 = { ...view.counters, byKind: { ...view.counters.byKind } };
    const cpu0 = process.cpuUsage();
    const brokerCpu0 = local?.cpuSeconds() ?? null;
    const t = topics(prefix);
    await publishOnce(brokerUrl, t.announce(compatible, channel), envelope, { retain: true, protocolVersion });
    const tPublished = Date.now();

    // Done: every device's final event arrived (events come in order, so all before it did too)
    // and its retained state is idle again with this update as the last result.
    const done = (): boolean =>
      included.every((id) => {
        const out = view.outcome(id);
        const st = view.row(id)?.state;
        return out !== null && 'source' in out && out.source === 'event' && st?.state === 'idle' && st.lastResult?.updateId === announcementId;
      });
    const timeoutMs = o.timeoutMs ?? 300_000;
    let lastProgress = Date.now();
    const every = o.progressEveryMs ?? 1000;
    const timedOut = !(await waitUntil(done, timeoutMs, () => {
      if (Date.now() - lastProgress < every) return;
      lastProgress = Date.now();
      const s = view.summary().announcement as AnnouncementSummary;
      const msgs = view.counters.messages - m0.messages;
      const secs = (Date.now() - tPublished) / 1000;
      say(`${secs.toFixed(1).padStart(6)} s  ${renderAnnouncementSummary(s)} | ${msgs} msgs (${Math.round(msgs / Math.max(secs, 0.001))}/s)`);
    }));
    const rolloutMs = Date.now() - tPublished;
    const cpu1 = process.cpuUsage(cpu0);
    const brokerCpu1 = local?.cpuSeconds() ?? null;
    const m1 = view.counters;
    const summary = view.summary().announcement as AnnouncementSummary;

    // What should have happened, device by device.
    const mismatches: string[] = [];
    const expected = { committed: 0, revertedHealthCheck: 0, revertedFallback: 0, untouched: 0 };
    const inSet = new Set(included);
    for (const spec of specs) {
      const out = view.outcome(spec.id);
      if (!inSet.has(spec.id)) {
        expected.untouched++;
        const running = view.row(spec.id)?.state?.runningVersion;
        // A reorder device outside the rollout refuses the stale copy (REPLAYED); nothing else may happen.
        if (out && !(out.kind === 'rejected' && spec.reorder)) mismatches.push(`${spec.id}: not in the rollout but ${out.kind}`);
        else if (running !== initialVersion) mismatches.push(`${spec.id}: not in the rollout but runs ${running}`);
        continue;
      }
      const want = spec.failHealth ? 'reverted HEALTH_CHECK_FAILED' : spec.fallback ? 'reverted BOOTLOADER_FALLBACK' : 'committed';
      if (spec.failHealth) expected.revertedHealthCheck++;
      else if (spec.fallback) expected.revertedFallback++;
      else expected.committed++;
      const got = out ? `${out.kind}${out.kind !== 'committed' && 'reason' in out && out.reason ? ` ${out.reason}` : ''}` : 'no result';
      if (got !== want) mismatches.push(`${spec.id}: expected ${want}, got ${got}`);
    }

    const sim = fleet.snapshot();
    const total = m1.messages - m0.messages;
    const report: SimulateReport = {
      ok: !timedOut && mismatches.length === 0,
      broker: brokerUrl,
      announcementId,
      version,
      percent,
      devices: o.devices,
      inRollout: included.length,
      faults: {
        failHealth: specs.filter((s) => s.failHealth).length,
        fallback: specs.filter((s) => s.fallback).length,
        drop: specs.filter((s) => s.drop).length,
        dup: specs.filter((s) => s.dup).length,
        reorder: specs.filter((s) => s.reorder).length,
      },
      expected,
      outcome: summary,
      mismatches,
      timedOut,
      sim,
      timing: { startupMs, rolloutMs, totalMs: 0 },
      messages: {
        total,
        events: (m1.byKind.events ?? 0) - (m0.byKind.events ?? 0),
        state: (m1.byKind.state ?? 0) - (m0.byKind.state ?? 0),
        online: (m1.byKind.online ?? 0) - (m0.byKind.online ?? 0),
        duplicateEvents: m1.duplicateEvents - m0.duplicateEvents,
        perSecond: Math.round(total / Math.max(rolloutMs / 1000, 0.001)),
      },
      memory: { peakRssBytes: 0, brokerPeakRssBytes: null },
      cpu: { processSeconds: (cpu1.user + cpu1.system) / 1e6, brokerSeconds: brokerCpu0 !== null && brokerCpu1 !== null ? brokerCpu1 - brokerCpu0 : null },
      dir,
    };

    for (const c of cleanups.splice(0)) await c().catch(() => undefined);
    if (o.cleanup) {
      // Empty retained messages clear the topics; the devices are stopped, so nothing re-publishes.
      await publishMany(brokerUrl, [
        { topic: t.announce(compatible, channel), payload: '', retain: true },
        ...ids.flatMap((id) => [{ topic: t.state(id), payload: '', retain: true }, { topic: t.online(id), payload: '', retain: true }]),
      ], { protocolVersion });
    }
    report.memory.peakRssBytes = process.resourceUsage().maxRSS * 1024;
    report.memory.brokerPeakRssBytes = local?.peakRssBytes() ?? null;
    report.timing.totalMs = Date.now() - t0;
    return report;
  } finally {
    for (const c of cleanups) await c().catch(() => undefined);
    await local?.stop().catch(() => undefined);
    if (!o.keep && !o.dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Polls `cond` every 100 ms (calling `tick` each time) until it holds or `ms` pass; false on timeout. */
async function waitUntil(cond: () => unknown, ms: number, tick?: () => void): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    tick?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

const pct = (n: number, of: number) => (of ? `${((100 * n) / of).toFixed(1)}%` : '-');
const mib = (b: number | null) => (b === null ? '-' : `${(b / 2 ** 20).toFixed(0)} MiB`);

/** The final table. */
export function renderSimulateReport(r: SimulateReport): string[] {
  const a = r.outcome;
  const rows: Array<[string, string, string]> = [
    ['committed', String(a.committed), `expected ${r.expected.committed}`],
    ['reverted', String(a.reverted), `expected ${r.expected.revertedHealthCheck + r.expected.revertedFallback} (health check ${r.expected.revertedHealthCheck}, bootloader fallback ${r.expected.revertedFallback})`],
    ['failed', String(a.failed), 'expected 0'],
    ['rejected', String(a.rejected), 'devices whose only record is a refusal (a reordered stale copy outside the rollout)'],
    ['pending', String(a.pending), r.timedOut ? 'TIMED OUT' : 'expected 0'],
    ['not in rollout', String(r.devices - r.inRollout), `untouched, still on the old version`],
  ];
  const reasons = Object.entries(a.reasons).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
  const lines = [
    `${r.announcementId} (${r.version}) to ${r.devices} device(s), ${r.percent}% rollout: ${r.inRollout} in the rollout (${pct(r.inRollout, r.devices)})`,
    `faults: health check ${r.faults.failHealth}, bootloader fallback ${r.faults.fallback}, connection drop ${r.faults.drop} (done ${r.sim.drops}), duplicate ${r.faults.dup} (done ${r.sim.duplicated}), reorder ${r.faults.reorder} (done ${r.sim.staleInjected})`,
    '',
    'outcome          devices',
    ...rows.map(([k, v, note]) => `${k.padEnd(16)} ${v.padStart(7)}   ${note}`),
    `reasons: ${reasons}`,
    '',
    `startup          ${(r.timing.startupMs / 1000).toFixed(1)} s (devices opened, connected, retained state seen)`,
    `rollout          ${(r.timing.rolloutMs / 1000).toFixed(1)} s wall (publish -> every device in the rollout reported its result and is idle)`,
    `messages         ${r.messages.total} from devices (events ${r.messages.events}, state ${r.messages.state}, online ${r.messages.online}); ${r.messages.perSecond} msg/s`,
    `reboots          ${r.sim.reboots}`,
    `CPU              ${r.cpu.processSeconds.toFixed(1)} s this process${r.cpu.brokerSeconds !== null ? `, ${r.cpu.brokerSeconds.toFixed(1)} s broker` : ''} during the rollout`,
    `peak RSS         ${mib(r.memory.peakRssBytes)} (this process)${r.memory.brokerPeakRssBytes !== null ? `, broker ${mib(r.memory.brokerPeakRssBytes)}` : ''}`,
    r.ok ? 'result           OK: every device ended as its faults predict' : `result           MISMATCH (${r.mismatches.length}${r.timedOut ? ', timed out' : ''}):`,
    ...r.mismatches.slice(0, 20).map((m) => `  ${m}`),
    ...(r.mismatches.length > 20 ? [`  … ${r.mismatches.length - 20} more`] : []),
  ];
  return lines;
}
