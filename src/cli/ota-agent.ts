#!/usr/bin/env node
// ota-agent: the device-side executable. `run` is the daemon; the rest are read-only views and a
// dry run, safe to use while the daemon runs (SQLite WAL lets readers in).
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { controlSocketPath, databasePath, runAgent } from '../agent/run.js';
import { sendControl } from '../control/client.js';
import { join, resolve } from 'node:path';
import { AgentStore } from '../store/agent-store.js';
import { AGENT_VERSION } from '../version.js';
import { plan } from './plan.js';
import { formatLastVerdictLine, lastVerdict, runCheckCommand } from './check.js';
import { table } from './format.js';
import { createBackend } from '../backends/registry.js';
import type { SlotInfo } from '../core/backend.js';
import { withTimeout } from '../util/timeout.js';

const DEFAULT_CONFIG = process.env.OTA_AGENT_CONFIG ?? '/etc/ota-agent/config.json';

function fail(message: string, code = 2): never {
  process.stderr.write(`ota-agent: ${message}\n`);
  process.exit(code);
}

function config(path: string): Config {
  try {
    return loadConfig(path);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message);
    throw e;
  }
}

function openStore(c: Config): AgentStore {
  const p = databasePath(c);
  if (!existsSync(p)) fail(`no agent state at ${p}: the agent has not run yet`);
  return new AgentStore(p, { readonly: true });
}

/** Live slot status from the backend (RAUC: GetSlotStatus); read-only, bounded in time. */
async function readSlots(c: Config): Promise<SlotInfo[] | { error: string }> {
  try {
    const backend = await createBackend(c, undefined, { inspectOnly: true });
    try {
      return await withTimeout(backend.slots(), 10_000, 'reading the slot status');
    } finally {
      await backend.close();
    }
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

const program = new Command('ota-agent').version(AGENT_VERSION).description('OTA update agent for A/B (RAUC) and OSTree devices');
program.option('-c, --config <file>', 'config file', DEFAULT_CONFIG);

program
  .command('run')
  .description('run the agent (the daemon)')
  .action(async () => {
    const c = config(program.opts<{ config: string }>().config);
    try {
      const code = await runAgent(c);
      process.exit(code);
    } catch (e) {
      fail(e instanceof Error ? e.message : String(e), 1);
    }
  });

program
  .command('status')
  .description('what runs, what is in flight, how the last update ended')
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    const c = config(program.opts<{ config: string }>().config);
    const slots = await readSlots(c);
    const store = openStore(c);
    const rec = store.current();
    const last = store.history(1)[0] ?? null;
    const lastCheck = lastVerdict(store);
    const status = {
      deviceId: c.deviceId,
      compatible: c.compatible,
      backend: store.getMeta('backend') ?? c.backend.type,
      runningVersion: store.getMeta('runningVersion') ?? null,
      bootedSlot: store.getMeta('bootedSlot') ?? null,
      state: rec?.state ?? 'idle',
      update: rec ? { id: rec.updateId, kind: rec.kind, fromVersion: rec.fromVersion, toVersion: rec.toVersion, state: rec.state, deferredUntil: rec.deferredUntil ?? null, since: rec.updatedAt } : null,
      lastResult: last,
      lastCheck,
      outboxPending: store.outboxSize(),
      slots,
      recentDecisions: store.decisions(5),
    };
    store.close();
    if (opts.json) {
      process.stdout.write(JSON.stringify(status, null, 2) + '\n');
      return;
    }
    const lines = [
      `device      ${status.deviceId} (${status.compatible}, backend ${status.backend})`,
      `running     ${status.runningVersion ?? '?'} on slot ${status.bootedSlot ?? '?'}`,
      `state       ${status.state}${rec ? ` — ${rec.updateId}: ${rec.fromVersion} -> ${rec.toVersion}${rec.deferredUntil ? `, waiting until ${rec.deferredUntil}` : ''}` : ''}`,
      `last result ${last ? `${last.result}${last.reason ? ` (${last.reason})` : ''} — ${last.updateId} ${last.toVersion}: ${last.message}` : 'none'}`,
      `last check  ${formatLastVerdictLine(lastCheck)}`,
      `outbox      ${status.outboxPending} event(s) waiting for the broker`,
      ...('error' in slots
        ? [`slots       unavailable: ${slots.error}`]
        : ['', table(['slot', 'booted', 'primary', 'boot-status', 'version'], slots.map((s) => [s.name, s.booted ? 'yes' : '', s.primary ? 'yes' : '', s.bootStatus ?? '', s.version ?? '']))]),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });

program
  .command('check')
  .description('run the configured health checks now; exit 0 if they pass, 1 if a required one fails')
  .option('--json', 'machine-readable output (the verdict)')
  .action(async (opts: { json?: boolean }) => {
    const c = config(program.opts<{ config: string }>().config);
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort(new Error('interrupted')));
    process.once('SIGTERM', () => stop.abort(new Error('terminated')));
    process.exit(await runCheckCommand(c, { json: opts.json ?? false, signal: stop.signal }));
  });

program
  .command('history')
  .description('finished updates and recent decisions on incoming messages')
  .option('--json', 'machine-readable output')
  .option('-n, --limit <n>', 'how many', '20')
  .action((opts: { json?: boolean; limit: string }) => {
    const c = config(program.opts<{ config: string }>().config);
    const store = openStore(c);
    const n = Math.max(1, Math.min(1000, Number.parseInt(opts.limit, 10) || 20));
    const updates = store.history(n).map((h) => ({ ...h, transitions: store.transitions(h.updateId) }));
    const decisions = store.decisions(n);
    store.close();
    if (opts.json) {
      process.stdout.write(JSON.stringify({ updates, decisions }, null, 2) + '\n');
      return;
    }
    process.stdout.write('Updates\n' + table(['finished', 'update', 'from', 'to', 'result', 'reason', 'message'], updates.map((u) => [u.finishedAt, u.updateId, u.fromVersion, u.toVersion, u.result, u.reason ?? '', u.message])) + '\n\n');
    process.stdout.write('Decisions\n' + table(['at', 'decision', 'reason', 'subject', 'message'], decisions.map((d) => [d.at, d.decision, d.reason ?? '', d.subject ?? '', d.message])) + '\n');
  });

program
  .command('install <source>')
  .description('offline install of a local bundle (or a URL with --sha256 and --size) through the running agent: same checks, commit and revert as an announced update')
  .option('--sha256 <hex>', 'expected digest (required for a URL, checked for a file)')
  .option('--size <bytes>', 'expected size (required for a URL)')
  .option('--allow-downgrade', 'install even if not newer than the running version')
  .action(async (source: string, opts: { sha256?: string; size?: string; allowDowngrade?: boolean }) => {
    const c = config(program.opts<{ config: string }>().config);
    let path = resolve(source);
    if (/^https?:\/\//.test(source)) {
      if (!opts.sha256 || !opts.size) fail('a URL needs --sha256 and --size (the digest is what makes a download trustworthy)');
      path = join(c.stateDir, 'downloads', `incoming-${opts.sha256}`);
      try {
        const { downloadArtifact } = await import('../fetch/download.js');
        await downloadArtifact({ url: source, destPath: path, sha256: opts.sha256, size: Number(opts.size) });
      } catch (e) {
        fail(`download failed: ${(e as Error).message}`, 1);
      }
    }
    let reply;
    try {
      reply = await sendControl(controlSocketPath(c), { cmd: 'install', path, allowDowngrade: opts.allowDowngrade ?? false, ...(opts.sha256 ? { sha256: opts.sha256 } : {}) });
    } catch (e) {
      fail((e as Error).message, 1);
    }
    if (!reply.ok) fail(`refused (${reply.reason}): ${reply.message}`, 1);
    process.stdout.write(`${reply.message}\nfollow it with: ota-agent status\n`);
  });

program
  .command('plan <file>')
  .description('what the agent would do with this announcement (a DSSE envelope file), and why; changes nothing')
  .option('--json', 'machine-readable output')
  .option('--running-version <v>', 'assume this running version (default: what the agent last booted)')
  .action((file: string, opts: { json?: boolean; runningVersion?: string }) => {
    const c = config(program.opts<{ config: string }>().config);
    let report;
    try {
      report = plan(c, file, opts.runningVersion ? { runningVersion: opts.runningVersion } : {});
    } catch (e) {
      fail(e instanceof Error ? e.message : String(e));
    }
    if (opts.json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    } else {
      const verdict = report.decision === 'accept' ? 'WOULD INSTALL' : report.decision === 'ignore' ? `WOULD IGNORE (${report.reason})` : `WOULD REFUSE (${report.reason})`;
      const out = [`${verdict}: ${report.message}`];
      if (report.announcement) out.push(`announcement ${report.announcement.id} version ${report.announcement.version} on ${report.announcement.channel}, sequence ${report.announcement.sequence}`);
      out.push(`device ${report.context.deviceId} running ${report.context.runningVersion}; in flight: ${report.context.inFlight ?? 'nothing'}`);
      report.steps.forEach((s, i) => out.push(`  ${i + 1}. ${s}`));
      process.stdout.write(out.join('\n') + '\n');
    }
    process.exit(report.decision === 'reject' ? 1 : 0);
  });

program.parseAsync(process.argv).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e), 1));
