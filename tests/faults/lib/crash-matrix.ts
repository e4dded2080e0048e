// The crash-at-every-step harness, the same for every backend: run each scenario undisturbed and
// record its transitions (from SQLite); assign every table row those runs take to one scenario;
// then, for each row, run that scenario again with the agent SIGKILLed right before and right after
// the transaction persisting the row (src/agent/crash-points.ts), restart it, and compare with the
// undisturbed run: same result, same transitions, every event once (gap-free sequence, no step
// under a second id), outbox drained, `PRAGMA integrity_check` ok, one history row.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { SimulatedDevice } from '../../../src/simulated/supervisor.js';
import type { SimLab } from '../../helpers/sim-lab.js';
import { readDb, outboxSize } from './db.js';
import { assignRows, rowKey, type Row } from './table.js';

export interface RigDevice {
  id: string;
  dbPath: string;
  agent: SimulatedDevice;
  logs: string[];
  /** How many installs the backend carried out (from its own log), null where not observable. */
  installs(): number | null;
  /** Power off and on: the bootloader picks the slot, the device's services and the agent start again (where the rig can). */
  powerCycle?: () => Promise<void>;
  close(): Promise<void>;
}

export interface Scenario<D extends RigDevice> {
  name: string;
  /** Starts and steers the scenario (announcements, commands); resolves with the update id to follow. */
  drive(d: D): Promise<string>;
  /** OTA_AGENT_FAILPOINTS for every agent process of the run (src/agent/failpoints.ts). */
  failpoints?: string;
  /** How a self-killed agent comes back: started again (systemd's Restart=), or the power goes (the rig's powerCycle). */
  afterCrash?: 'restart' | 'power-cycle';
}

export interface RunReport {
  scenario: string;
  crash: string | null;
  fired: boolean;
  restarts: number;
  result: string;
  transitions: string[];
  steps: string[];
  seqGapFree: boolean;
  integrity: string;
  outbox: number;
  historyRows: number;
  installs: number | null;
  finalState: string | undefined;
  runningVersion: string | undefined;
  seconds: number;
}

export interface MatrixReport {
  backend: string;
  undisturbed: RunReport[];
  crashes: RunReport[];
  unreachable: string[];
  seconds: number;
}

const fmt = (r: Row) => rowKey(r);

/** Sets the crash point for agents spawned from now on (they inherit this process's environment). */
function armCrash(spec: string | null, marker: string | null): void {
  if (spec && marker) {
    process.env.OTA_AGENT_CRASH_AT = spec;
    process.env.OTA_AGENT_CRASH_ONCE = marker;
  } else {
    delete process.env.OTA_AGENT_CRASH_AT;
    delete process.env.OTA_AGENT_CRASH_ONCE;
  }
}

/**
 * Plays systemd's Restart=on-failure: an agent that killed itself (a crash point, a crash failpoint)
 * is started again — or, for a scenario that says so, the device is power-cycled instead.
 */
function restartAfterCrash(d: RigDevice, how: 'restart' | 'power-cycle'): { stop: () => void; restarts: () => number } {
  let n = 0;
  let stopped = false;
  let busy = false;
  const tick = setInterval(() => {
    if (stopped || busy) return;
    if (d.agent.pid === undefined && d.agent.diedUnasked) {
      n++;
      if (how === 'power-cycle' && d.powerCycle) {
        busy = true;
        void d.powerCycle().finally(() => (busy = false));
      } else {
        d.agent.start();
      }
    }
  }, 25);
  return {
    stop: () => {
      stopped = true;
      clearInterval(tick);
    },
    restarts: () => n,
  };
}

export async function runOnce<D extends RigDevice>(lab: SimLab, create: () => Promise<D>, sc: Scenario<D>, crash: { when: 'before' | 'after'; row: Row } | null, timeoutMs = 90_000): Promise<RunReport> {
  const t0 = Date.now();
  const spec = crash ? `${crash.when}:${fmt(crash.row)}` : null;
  const marker = crash ? join(lab.dir, `crash-${randomBytes(4).toString('hex')}`) : null;
  armCrash(spec, marker);
  if (sc.failpoints) process.env.OTA_AGENT_FAILPOINTS = sc.failpoints;
  let d: D | null = null;
  let guard: ReturnType<typeof restartAfterCrash> | null = null;
  try {
    d = await create();
    if (sc.afterCrash === 'power-cycle' && !d.powerCycle) throw new Error(`${sc.name}: this rig cannot power-cycle`);
    guard = restartAfterCrash(d, sc.afterCrash ?? 'restart');
    const dev = d;
    const updateId = await sc.drive(dev).catch((e: Error) => {
      throw new Error(`${sc.name} ${spec ?? 'undisturbed'}: ${e.message}\n${diagnose(lab, dev, marker, guard?.restarts() ?? 0)}`);
    });
    const final = await lab.watcher.waitForResult(dev.id, updateId, timeoutMs).catch((e: Error) => {
      throw new Error(`${sc.name} ${spec ?? 'undisturbed'}: ${e.message}\n${diagnose(lab, dev, marker, guard?.restarts() ?? 0)}`);
    });
    // A retained state from after the result: the events may overtake the state messages, and the
    // idle state from before the update (a rollback starts from idle) must not count.
    const resultAt = final.at;
    await lab.watcher.waitFor(() => {
      const st = lab.watcher.states.get(dev.id);
      return st?.state === 'idle' && st.at >= resultAt && outboxSize(dev.dbPath) === 0;
    }, 30_000, `${dev.id} idle (state newer than the result) with the outbox drained`);
    const facts = readDb(dev.dbPath, updateId);
    const events = lab.watcher.eventsOf(dev.id);
    const st = lab.watcher.states.get(dev.id);
    return {
      scenario: sc.name,
      crash: spec,
      fired: marker ? existsSync(marker) : false,
      restarts: guard?.restarts() ?? 0,
      result: final.result ?? 'none',
      transitions: facts.transitions.map(fmt),
      steps: events.filter((e) => e.updateId === updateId && e.to !== undefined).map((e) => `${e.from}>${e.to}`),
      seqGapFree: events.every((e, i) => e.seq === i + 1),
      integrity: facts.integrity,
      outbox: facts.outbox,
      historyRows: facts.historyRows,
      installs: dev.installs(),
      finalState: st?.state,
      runningVersion: st?.runningVersion,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    guard?.stop();
    armCrash(null, null);
    delete process.env.OTA_AGENT_FAILPOINTS;
    await d?.close();
  }
}

/** What a stuck run looks like from outside: events seen, the persisted record, the agent's last words. */
function diagnose(lab: SimLab, d: RigDevice, marker: string | null, restarts: number): string {
  let record: string;
  try {
    const db = new Database(d.dbPath, { readonly: true });
    record = (db.prepare('SELECT record FROM current_update WHERE id = 1').get() as { record: string } | undefined)?.record.slice(0, 300) ?? 'no update in flight';
    db.close();
  } catch (e) {
    record = String(e);
  }
  const steps = lab.watcher.eventsOf(d.id).map((e) => `${e.seq}:${e.to ?? e.type}`).join(' ');
  const tail = d.logs.filter((l) => !l.includes('"level":20')).slice(-12).map((l) => l.slice(0, 300)).join('\n');
  return `agent pid ${String(d.agent.pid)}, crash fired ${String(marker ? existsSync(marker) : false)}, restarts ${restarts}; events ${steps}; record ${record}\n${tail}`;
}

/** An install is legitimately repeated only when the crash hit after the install finished but before INSTALLED was committed. */
export function installsAllowed(crash: string | null, undisturbed: number | null): number | null {
  if (undisturbed === null) return null;
  return crash && /^before:installing->/.test(crash) && !/:FAIL$/.test(crash) ? undisturbed + 1 : undisturbed;
}

/** What makes a crash run "converged", "lost" or "duplicated" compared with the undisturbed run. */
export function judge(base: RunReport, run: RunReport): { converged: boolean; lost: boolean; duplicated: boolean; problems: string[] } {
  const problems: string[] = [];
  if (!run.fired) problems.push('the crash point never fired');
  if (run.result !== base.result) problems.push(`result ${run.result}, undisturbed ${base.result}`);
  if (run.transitions.join() !== base.transitions.join()) problems.push(`transitions ${run.transitions.join(' ')} != ${base.transitions.join(' ')}`);
  if (run.integrity !== 'ok') problems.push(`integrity_check: ${run.integrity}`);
  if (run.historyRows !== 1) problems.push(`${run.historyRows} history rows`);
  if (run.outbox !== 0) problems.push(`outbox ${run.outbox}`);
  if (run.finalState !== 'idle' || run.runningVersion !== base.runningVersion) problems.push(`ended ${run.finalState} on ${run.runningVersion}, undisturbed idle on ${base.runningVersion}`);
  const allowed = installsAllowed(run.crash, base.installs);
  if (allowed !== null && run.installs !== null && run.installs > allowed) problems.push(`${run.installs} installs (allowed ${allowed})`);
  const lost = !run.seqGapFree || base.steps.some((s) => !run.steps.includes(s));
  const duplicated = run.steps.length !== new Set(run.steps).size || run.steps.length > base.steps.length;
  if (lost) problems.push(`events lost: steps ${run.steps.join(' ')} gap-free ${String(run.seqGapFree)}`);
  if (duplicated) problems.push(`events duplicated: steps ${run.steps.join(' ')}`);
  return { converged: problems.length === 0, lost, duplicated, problems };
}

/** Undisturbed runs of every scenario, then the plan of crash points. */
export async function planMatrix<D extends RigDevice>(lab: SimLab, create: () => Promise<D>, scenarios: Array<Scenario<D>>) {
  const undisturbed: RunReport[] = [];
  for (const sc of scenarios) undisturbed.push(await runOnce(lab, create, sc, null));
  const { plan, unreachable } = assignRows(undisturbed.map((u) => ({ scenario: u.scenario, rows: u.transitions.map(parseRow) })));
  return { undisturbed, plan, unreachable };
}

export function parseRow(k: string): Row {
  const m = /^(.+)->(.+):([A-Z_]+)$/.exec(k);
  if (!m) throw new Error(`not a row key: ${k}`);
  return { from: m[1] as string, to: m[2] as string, event: m[3] as string };
}
