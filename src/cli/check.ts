// `ota-agent check [--json]`: runs the configured health checks now, the same way the daemon does
// on a new boot (grace, deadline, journal tail on failure), prints the table or the JSON verdict and
// exits 0 on pass, 1 on fail. The verdict is stored in SQLite meta 'lastCheck' (the key the signed
// `check` command uses too), which `ota-agent status` shows. Also what ota-agent-boot-check.service
// runs before boot-complete.target.
import { existsSync, statSync } from 'node:fs';
import { databasePath } from '../agent/run.js';
import type { Config } from '../config/schema.js';
import { agentRunChecks } from '../health/agent-options.js';
import { formatVerdictTable } from '../health/format-verdict.js';
import { HealthVerdict } from '../health/schema.js';
import { AgentStore } from '../store/agent-store.js';

export const LAST_CHECK_META_KEY = 'lastCheck';

export interface CheckIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const processIo: CheckIo = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) };

/** Runs the checks; resolves with the exit code (0 pass, 1 fail, 130 interrupted). */
export async function runCheckCommand(config: Config, opts: { json?: boolean; signal?: AbortSignal } = {}, io: CheckIo = processIo): Promise<number> {
  const run = agentRunChecks(config);
  let verdict: HealthVerdict;
  try {
    verdict = await run(config.healthChecks, opts.signal ?? new AbortController().signal);
  } catch (e) {
    if (opts.signal?.aborted) {
      io.stderr('ota-agent: check interrupted; no verdict\n');
      return 130;
    }
    throw e;
  }
  const note = recordLastCheck(config, verdict);
  if (note) io.stderr(`ota-agent: ${note}\n`);
  io.stdout(opts.json ? JSON.stringify(verdict, null, 2) + '\n' : formatCheckReport(verdict) + '\n');
  return verdict.passed ? 0 : 1;
}

/** The table, then details of each check that failed (and every script-dir's per-script list), then the journal tail. */
export function formatCheckReport(verdict: HealthVerdict): string {
  const out = [formatVerdictTable(verdict)];
  for (const r of verdict.results) {
    if ((r.passed && r.kind !== 'script-dir') || r.attempts === 0) continue;
    const body = r.outputTail.trimEnd();
    if (body === '' || body === r.error) continue;
    out.push('', `--- ${r.name} ---`, body);
  }
  const j = verdict.journalTail;
  if (j && j.lines.length === 0) out.push('', `--- no log lines to show${j.note ? ` (${j.note})` : ''} ---`);
  else if (j) out.push('', `--- last ${j.lines.length} line(s) of ${j.source === 'journal' ? 'the journal of this boot' : "the agent's own log"}${j.note ? ` (${j.note})` : ''} ---`, ...j.lines);
  return out.join('\n');
}

/**
 * Stores the verdict in meta 'lastCheck'. Only into a database the agent already created and only
 * as its owner: root writing it would leave root-owned WAL files the unprivileged daemon cannot open.
 * Returns why it was not stored, or null.
 */
export function recordLastCheck(config: Config, verdict: HealthVerdict): string | null {
  const path = databasePath(config);
  if (!existsSync(path)) return `verdict not recorded: no agent state at ${path} yet`;
  const uid = process.getuid?.();
  const owner = statSync(path).uid;
  if (uid !== undefined && uid !== owner) return `verdict not recorded: ${path} belongs to uid ${owner}, not to this user (uid ${uid}); run as the agent's user to record it`;
  let store: AgentStore | null = null;
  try {
    store = new AgentStore(path);
    store.setMeta(LAST_CHECK_META_KEY, JSON.stringify(verdict));
    return null;
  } catch (e) {
    return `verdict not recorded in ${path}: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    store?.close();
  }
}

export interface LastVerdict {
  /** Where it comes from: 'update <id>' (the verifying state of an update) or 'check' (ota-agent check or the signed check command). */
  source: string;
  verdict: HealthVerdict;
}

/** The most recent verdict on record: the update in flight, the last finished update, or meta 'lastCheck'. */
export function lastVerdict(store: AgentStore): LastVerdict | null {
  const candidates: LastVerdict[] = [];
  const add = (source: string, value: unknown): void => {
    const parsed = HealthVerdict.safeParse(value);
    if (parsed.success) candidates.push({ source, verdict: parsed.data });
  };
  const rec = store.current();
  if (rec?.checks) add(`update ${rec.updateId}`, rec.checks);
  const last = store.lastOutcome();
  if (last) {
    try {
      const record = JSON.parse(last.record) as { checks?: unknown; outcome?: { checks?: unknown } };
      add(`update ${last.updateId}`, record.outcome?.checks ?? record.checks);
    } catch {
      // an unreadable history row is no reason to fail `status`
    }
  }
  const meta = store.getMeta(LAST_CHECK_META_KEY);
  if (meta) {
    try {
      add('check', JSON.parse(meta));
    } catch {
      // ditto
    }
  }
  candidates.sort((a, b) => b.verdict.finishedAt.localeCompare(a.verdict.finishedAt));
  return candidates[0] ?? null;
}

/** One line for `ota-agent status`. */
export function formatLastVerdictLine(last: LastVerdict | null): string {
  if (!last) return 'none';
  const v = last.verdict;
  const total = v.results.length;
  const passed = v.results.filter((r) => r.passed).length;
  const what = v.passed ? `PASS (${passed}/${total} passed)` : `FAIL (required checks failed: ${v.failed.join(', ')})`;
  return `${what} at ${v.finishedAt} — ${last.source === 'check' ? 'check run' : last.source}`;
}
