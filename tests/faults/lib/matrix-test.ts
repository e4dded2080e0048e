// Runs a crash matrix inside one vitest test and reports it: the JSON goes to .tmp/faults/, the
// figures to the summary, and every run that did not converge fails the test with its problems.
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { SimLab } from '../../helpers/sim-lab.js';
import { judge, parseRow, planMatrix, runOnce, type MatrixReport, type RunReport, type RigDevice, type Scenario } from './crash-matrix.js';
import { record, writeJson } from './summary.js';
import { assignRows, rowKey } from './table.js';

export async function crashMatrix<D extends RigDevice>(backend: string, lab: SimLab, create: (scenario: string) => () => Promise<D>, scenarios: Array<{ key: string; sc: Scenario<D> }>): Promise<void> {
  const t0 = Date.now();
  // FAULTS_SCENARIOS=cancel,rollback narrows a run while working on one scenario (the report says so).
  const only = process.env.FAULTS_SCENARIOS?.split(',').filter(Boolean);
  if (only?.length) scenarios = scenarios.filter((s) => only.includes(s.key));
  const byName = new Map(scenarios.map((s) => [s.sc.name, s]));
  // One undisturbed run per scenario, each on its own device config.
  const undisturbed: RunReport[] = [];
  for (const s of scenarios) {
    const { undisturbed: u } = await planMatrix(lab, create(s.key), [s.sc]);
    undisturbed.push(...u);
    console.log(`[faults] ${backend} undisturbed ${s.sc.name}: ${u.map((x) => `${x.result} ${x.transitions.join(' ')}`).join()}`);
  }
  const { plan, unreachable } = assignRows(undisturbed.map((u) => ({ scenario: u.scenario, rows: u.transitions.map(parseRow) })));
  const crashes: RunReport[] = [];
  const failures: string[] = [];
  let lost = 0;
  let duplicated = 0;
  let converged = 0;
  for (const p of plan) {
    const s = byName.get(p.scenario);
    if (!s) throw new Error(`no scenario ${p.scenario}`);
    const base = undisturbed.find((u) => u.scenario === p.scenario);
    if (!base) throw new Error(`no undisturbed run of ${p.scenario}`);
    for (const when of ['before', 'after'] as const) {
      const run = await runOnce(lab, create(s.key), s.sc, { when, row: p.row }).catch((e: Error) => e);
      if (run instanceof Error) {
        failures.push(`${p.scenario} ${when}:${rowKey(p.row)}: ${run.message.slice(0, 5000)}`);
        console.log(`[faults] ${backend} ${p.scenario} ${when}:${rowKey(p.row)}: ERROR ${run.message.slice(0, 300)}`);
        continue;
      }
      crashes.push(run);
      const j = judge(base, run);
      if (j.converged) converged++;
      if (j.lost) lost++;
      if (j.duplicated) duplicated++;
      if (!j.converged) failures.push(`${p.scenario} ${run.crash}: ${j.problems.join('; ')}`);
      console.log(`[faults] ${backend} ${p.scenario} ${run.crash}: ${j.converged ? 'converged' : j.problems.join('; ')} (${run.seconds.toFixed(1)} s)`);
    }
  }
  const report: MatrixReport & { failures: string[]; plan: Array<{ scenario: string; row: string }> } = {
    backend,
    undisturbed,
    crashes,
    unreachable: unreachable.map(rowKey),
    seconds: (Date.now() - t0) / 1000,
    failures,
    plan: plan.map((p) => ({ scenario: p.scenario, row: rowKey(p.row) })),
  };
  const joined = only?.join('+') ?? '';
  const suffix = only?.length ? `-only-${joined.length > 80 ? `${only.length}-scenarios-${createHash('sha256').update(joined).digest('hex').slice(0, 8)}` : joined}` : '';
  writeJson(`crash-matrix-${backend}${suffix}.json`, report);
  record(`crash-${backend}${suffix}`, {
    scenario: `crash at every step (${backend})`,
    runs: plan.length * 2,
    converged,
    lost,
    duplicated,
    seconds: Math.round(report.seconds),
    rowsReached: plan.length,
    rowsUnreachable: unreachable.length,
    scenarios: scenarios.map((s) => s.sc.name),
    undisturbedResults: undisturbed.map((u) => `${u.scenario}: ${u.result}`),
    repeatedInstalls: crashes.filter((c) => c.installs !== null && base(c)?.installs !== null && (c.installs ?? 0) > (base(c)?.installs ?? 0)).map((c) => c.crash),
  });
  function base(c: { scenario: string }) {
    return undisturbed.find((u) => u.scenario === c.scenario);
  }
  expect(plan.length).toBeGreaterThan(0);
  expect(failures).toEqual([]);
}
