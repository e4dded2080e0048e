// Benchmark (issue #10): the agent's footprint and speed, each figure as a RATIO against a baseline
// measured in the same run, printed as a table (docs/performance.md has the latest one). Not part of
// the test suite; only loopback; every loop is bounded in count and time; every child process is
// ended by its PID and the temp directory is removed at the end.
//
//   npm run bench:perf                               # everything (about 10 minutes on 2 cores)
//   npm run bench:perf -- --only idle,start          # some phases: idle,flood,start,announce,download,rauc
//   npm run bench:perf -- --cpu-seconds 20 --download-mib 256 --flood 20000
//   npm run bench:perf -- --agent-flags=--max-semi-space-size=1   # node flags for the measured agent
//   npm run bench:perf -- --only idle --compare before=.tmp/dist-before/cli/ota-agent.js   # another build beside it
//
// Phases:
//   idle      bare `node -e setInterval` | the real `ota-agent run` (simulated backend, mosquitto on
//             loopback, connected + subscribed + SQLite open) | the same agent under node flag variants
//             (the cheap levers) | mender-client (if installed), all idling side by side: VmRSS and
//             Pss medians, then CPU over --cpu-seconds (schedstat, ns), then epoll_wait wake-ups under
//             strace (if installed)
//   flood     --flood distinct bad-signature announcements at the idling agent over MQTT: its peak RSS,
//             how many it decided per second, `ota-agent status --json` latency while it runs
//   start     spawn -> the device's retained state seen on the broker, against `node -e 0` and a tiny
//             script that imports mqtt, connects and publishes once
//   announce  admitAnnouncement and Agent.handleAnnouncement (real SQLite) in this process, on a mix of
//             valid-but-not-newer and bad-signature envelopes
//   download  downloadArtifact of --download-mib MiB from a loopback HTTP server (a child process)
//             in a fresh child process (perf-download-child.ts) against `sha256sum` of the same file;
//             that child's RSS growth (VmHWM reset before the download). --download-rounds rounds,
//             each with both HTTP clients (fixed-buffer and Node's http module), in rotating order;
//             --download-tls serves it over https instead (self-signed certificate, openssl CLI)
//   rauc      RaucBackend.install of a --rauc-mib bundle against a direct dbus-next InstallBundle
//
// Built with plain tsc (bench/tsconfig.json -> .tmp/bench/); the agent itself runs from dist/.
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { Agent } from '../src/agent/agent.js';
import { parseConfig } from '../src/config/load.js';
import { trustPolicy } from '../src/config/trust.js';
import { admitAnnouncement, type AdmissionContext } from '../src/core/admission.js';
import { simulatedDeviceConfig } from '../src/demo/device-config.js';
import { generateKeyPair, signAnnouncement } from '../src/fleet/sign.js';
import type { AnnouncementInput } from '../src/schemas/announcement.js';
import { SimulatedBackend, SimulatedOptions } from '../src/simulated/backend.js';
import { AgentStore } from '../src/store/agent-store.js';
import { silentLogger } from '../src/util/log.js';
import { Mosquitto } from '../tests/helpers/mosquitto.js';
import {
  childrenOf, end, median, MiB, mib, own, pssOf, renderTable, rssOf, schedNsOf, threadsOf, ticksOf, timeRun, type Row,
} from './perf-lib.js';
import { raucFigure } from './perf-rauc.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url)); // .tmp/bench/bench/ -> repo root
// What a release ships and systemd starts: the bundled agent (scripts/bundle.mjs). The unbundled
// build (dist/cli) can be put beside it with --compare 'modules=dist/cli/ota-agent.js'.
const AGENT_CLI = join(REPO, 'dist', 'bundle', 'ota-agent.mjs');
const PHASES = ['idle', 'flood', 'start', 'announce', 'download', 'rauc'] as const;
type Phase = (typeof PHASES)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    samples: { type: 'string', default: '5' },
    'settle-seconds': { type: 'string', default: '40' },
    'cpu-seconds': { type: 'string', default: '60' },
    'strace-seconds': { type: 'string', default: '20' },
    flood: { type: 'string', default: '100000' },
    'flood-seconds': { type: 'string', default: '400' },
    'download-mib': { type: 'string', default: '1024' },
    'download-rounds': { type: 'string', default: '2' },
    'download-compare': { type: 'string' },
    'download-tls': { type: 'boolean', default: false },
    // Extra fixed-buffer rounds with more node flags, e.g. '--no-opt' (semicolon-separated sets).
    'download-flag-variants': { type: 'string', default: '' },
    'rauc-mib': { type: 'string', default: '200' },
    'rauc-rounds': { type: 'string', default: '2' },
    'agent-flags': { type: 'string', default: '--max-semi-space-size=1 --jitless' }, // as systemd/ota-agent.service starts it
    variants: { type: 'string', default: '--max-semi-space-size=1;--max-semi-space-size=1 --no-opt;--max-semi-space-size=1 --no-opt --no-sparkplug' },
    compare: { type: 'string', default: '' },
    'compare-store': { type: 'string' },
    'no-mender': { type: 'boolean', default: false },
    'json-out': { type: 'string' },
  },
});

const only = new Set<Phase>(values.only ? (values.only.split(',').map((s) => s.trim()) as Phase[]) : PHASES);
for (const p of only) if (!PHASES.includes(p)) throw new Error(`--only: unknown phase "${p}" (known: ${PHASES.join(', ')})`);
const SAMPLES = Math.max(1, Math.min(20, Number(values.samples)));
const SETTLE_SECONDS = Math.max(0, Math.min(120, Number(values['settle-seconds'])));
const CPU_SECONDS = Math.max(5, Math.min(600, Number(values['cpu-seconds'])));
const STRACE_SECONDS = Math.max(0, Math.min(120, Number(values['strace-seconds'])));
const FLOOD = Math.max(1000, Math.min(1_000_000, Number(values.flood)));
const FLOOD_SECONDS = Math.max(10, Math.min(1200, Number(values['flood-seconds'])));
const AGENT_FLAGS = values['agent-flags'].split(' ').filter(Boolean);
const VARIANTS = values.variants.split(';').map((v) => v.trim()).filter(Boolean);
// label=path/to/ota-agent.js;...: other builds of the agent idling beside this one (before/after a change).
const COMPARE = values.compare.split(';').filter(Boolean).map((c) => ({ label: c.slice(0, c.indexOf('=')), cli: c.slice(c.indexOf('=') + 1) }));

const rows: Row[] = [];
const extra: Record<string, unknown> = {};
const log = (l: string) => process.stdout.write(`${l}\n`);
const ratio = (x: number, y: number) => (y > 0 ? `${(x / y).toFixed(2)}x` : 'n/a');
const work = mkdtempSync(join(tmpdir(), 'ota-perf-'));
const key = generateKeyPair();
const signer = createPrivateKey(key.privateKeyPem);
let seq = Date.now();

// ---- a watcher on the broker ----------------------------------------------------------------------

interface Seen { topic: string; payload: Buffer; at: bigint }
class Watcher {
  private waiters: Array<{ pick: (m: Seen) => boolean; resolve: (m: Seen) => void }> = [];
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const m: Seen = { topic, payload, at: process.hrtime.bigint() };
      this.waiters = this.waiters.filter((w) => {
        if (!w.pick(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }
  static async connect(url: string): Promise<Watcher> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `perf-watch-${randomBytes(3).toString('hex')}` });
    await client.subscribeAsync({ 'ota/v1/devices/+/state': { qos: 0 }, 'ota/v1/devices/+/online': { qos: 0 }, 'perf/start/+': { qos: 0 } });
    return new Watcher(client);
  }
  /** The next message (live, arriving after this call) that `pick` accepts. */
  next(pick: (m: Seen) => boolean, timeoutMs: number, what: string): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const w = { pick, resolve: (m: Seen) => (clearTimeout(t), resolve(m)) };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

// ---- a simulated device running the real agent --------------------------------------------------

interface Device { id: string; dir: string; configPath: string; compatible: string }

function makeDevice(broker: string, name: string, logLevel: 'warn' | 'debug' = 'warn'): Device {
  const id = `perf-${name}-${randomBytes(2).toString('hex')}`;
  const dir = join(work, id);
  mkdirSync(dir, { recursive: true });
  // A compatible of its own: a flood at one device's announcement topic reaches no other agent.
  const compatible = `perf-${name}`;
  const config = simulatedDeviceConfig({ dir, deviceId: id, brokerUrl: broker, protocolVersion: 5, publicKeyPem: key.publicKeyPem, compatible, logLevel });
  const configPath = join(dir, 'agent.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return { id, dir, configPath, compatible };
}

interface RunningAgent { proc: ChildProcess; refusals: () => number }

function spawnAgent(dev: Device, flags: string[], cli = AGENT_CLI): RunningAgent {
  // A variant token "env:NAME=VALUE" sets an environment variable (e.g. env:MALLOC_ARENA_MAX=2)
  // instead of passing a node flag.
  const env = { ...process.env };
  for (const f of flags.filter((x) => x.startsWith('env:'))) env[f.slice(4, f.indexOf('='))] = f.slice(f.indexOf('=') + 1);
  const nodeFlags = flags.filter((x) => !x.startsWith('env:'));
  const proc = own(process.execPath, [...nodeFlags, cli, '--config', dev.configPath, 'run'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let refusals = 0;
  let tail = '';
  // Counts "announcement refused" log lines (level warn) without keeping the output.
  proc.stdout?.on('data', (b: Buffer) => {
    const s = tail + b.toString('utf8');
    refusals += s.split('announcement refused').length - 1;
    tail = s.slice(-32);
    if (tail.includes('announcement refused')) tail = tail.slice(tail.lastIndexOf('announcement refused') + 20);
  });
  proc.stderr?.on('data', () => undefined);
  return { proc, refusals: () => refusals };
}

const stateOf = (id: string) => (m: Seen) => m.topic === `ota/v1/devices/${id}/state`;

function announcementInput(version: string, compatible = 'perf-gw'): AnnouncementInput {
  const now = Date.now();
  const id = `perf-${version}-${++seq}`;
  return {
    id, sequence: seq, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 3600_000).toISOString(),
    compatible, channel: 'stable', version, backend: 'rauc',
    artifact: { url: 'http://127.0.0.1:9/a.img', sha256: '0'.repeat(64), size: 1024 },
    rollout: { percent: 100 },
  } as AnnouncementInput;
}

/** Valid envelope, then its signature replaced by 64 random bytes: distinct digest, BAD_SIGNATURE. */
function badSignatureFactory(): () => Buffer {
  const env = signAnnouncement(announcementInput('9.9.9'), [signer]).envelope;
  return () => {
    const e = { ...env, signatures: env.signatures.map((s) => ({ ...s, sig: randomBytes(64).toString('base64') })) };
    return Buffer.from(JSON.stringify(e));
  };
}
const notNewer = () => Buffer.from(JSON.stringify(signAnnouncement(announcementInput('0.9.0'), [signer]).envelope));

// ---- phases ---------------------------------------------------------------------------------------

interface Idler { name: string; pid: () => number[]; proc: ChildProcess; agent?: RunningAgent; dev?: Device }

async function startMender(): Promise<Idler | null> {
  if (values['no-mender']) return null;
  if (!existsSync('/usr/bin/mender')) {
    log('mender: /usr/bin/mender not installed; its row cites docs/performance.md / peer-footprint.md');
    return null;
  }
  // How peer-footprint.md made it idle: an identity script, /etc/mender/artifact_info, a private
  // dbus-daemon, bind mounts in a private mount namespace; the server is a closed loopback port.
  const d = join(work, 'mender');
  for (const sub of ['etc', 'identity', 'dataroot/mender']) mkdirSync(join(d, sub), { recursive: true });
  writeFileSync(join(d, 'identity', 'mender-device-identity'), '#!/bin/sh\necho mac=02:00:00:00:00:01\n', { mode: 0o755 });
  writeFileSync(join(d, 'etc', 'artifact_info'), 'artifact_name=perf-idle\n');
  writeFileSync(join(d, 'etc', 'mender.conf'), JSON.stringify({ ServerURL: 'https://127.0.0.1:9', UpdatePollIntervalSeconds: 1800, InventoryPollIntervalSeconds: 28800, RetryPollIntervalSeconds: 300 }));
  writeFileSync(join(d, 'dataroot', 'mender', 'device_type'), 'device_type=perf\n');
  const sock = join(d, 'bus.sock');
  writeFileSync(
    join(d, 'dbus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>\n`,
  );
  const bus = own('dbus-daemon', [`--config-file=${join(d, 'dbus.conf')}`, '--nofork', '--nopidfile', '--nosyslog']);
  for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(20);
  const script = `mount --bind ${d}/etc /etc/mender && mount --bind ${d}/identity /usr/share/mender/identity && mount --bind ${d}/dataroot /data && exec mender daemon`;
  const proc = own('unshare', ['-m', 'sh', '-c', script], { env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${sock}` }, stdio: ['ignore', 'ignore', 'ignore'] });
  proc.once('exit', () => void end(bus));
  await sleep(1000);
  if (proc.exitCode !== null) {
    await end(bus);
    log(`mender: exited with ${proc.exitCode} (unshare/mount not allowed?); not measured`);
    return null;
  }
  return { name: 'mender-client 3.4 (Go)', pid: () => [proc.pid as number], proc };
}

async function idlePhase(broker: string, watcher: Watcher): Promise<{ agent: Idler; others: Idler[] }> {
  log(`idle: starting bare node, the agent${VARIANTS.length ? ` + ${VARIANTS.length} flag variant(s)` : ''}${values['no-mender'] ? '' : ', mender'} side by side`);
  const bare = own(process.execPath, ['-e', 'setInterval(()=>{},1e9)']);
  const idlers: Idler[] = [{ name: 'bare node (setInterval)', pid: () => [bare.pid as number], proc: bare }];
  const agents: Idler[] = [];
  for (const [i, flags] of [AGENT_FLAGS.join(' '), ...VARIANTS].entries()) {
    const dev = makeDevice(broker, i === 0 ? 'idle' : `var${i}`);
    const seen = watcher.next(stateOf(dev.id), 30_000, `${dev.id} state`);
    const agent = spawnAgent(dev, flags.split(' ').filter(Boolean));
    await seen;
    const a: Idler = { name: i === 0 ? `ota-agent${flags ? ` ${flags}` : ''}` : `ota-agent ${flags}`, pid: () => [agent.proc.pid as number], proc: agent.proc, agent, dev };
    agents.push(a);
  }
  for (const [i, c] of COMPARE.entries()) {
    const dev = makeDevice(broker, `cmp${i}`);
    const seen = watcher.next(stateOf(dev.id), 30_000, `${dev.id} state`);
    // "label=path/to/cli.js --node-flag ...": node flags after the path apply to that build only.
    const [cli = c.cli, ...cliFlags] = c.cli.split(' ').filter(Boolean);
    const agent = spawnAgent(dev, [...AGENT_FLAGS, ...cliFlags], cli);
    await seen;
    agents.push({ name: `ota-agent [${c.label}]`, pid: () => [agent.proc.pid as number], proc: agent.proc, agent, dev });
  }
  idlers.push(...agents);
  const mender = await startMender();
  if (mender) idlers.push({ ...mender, pid: () => [mender.proc.pid as number, ...childrenOf(mender.proc.pid as number)] });
  // Startup garbage is collected by V8's memory reducer some seconds after the last activity.
  log(`idle: all up; settling ${SETTLE_SECONDS} s`);
  await sleep(SETTLE_SECONDS * 1000);

  const sum = (f: (pid: number) => number | null) => (i: Idler) => () => {
    const xs = i.pid().map(f);
    return xs.some((x) => x === null) ? null : (xs as number[]).reduce((a, b) => a + b, 0);
  };
  const mem = new Map<string, { rss: number | null; pss: number | null; threads: number | null }>();
  // Interleaved sampling: every idler is read in the same second.
  const rss: Record<string, number[]> = {};
  const pss: Record<string, number[]> = {};
  for (let s = 0; s < SAMPLES; s++) {
    for (const i of idlers) {
      const r = sum(rssOf)(i)();
      const p = sum(pssOf)(i)();
      if (r !== null) (rss[i.name] ??= []).push(r);
      if (p !== null) (pss[i.name] ??= []).push(p);
    }
    await sleep(1000);
  }
  for (const i of idlers) mem.set(i.name, { rss: rss[i.name] ? median(rss[i.name] as number[]) : null, pss: pss[i.name] ? median(pss[i.name] as number[]) : null, threads: threadsOf(i.pid()[0] as number) });

  log(`idle: CPU over ${CPU_SECONDS} s`);
  const ns0 = new Map(idlers.map((i) => [i.name, sum(schedNsOf)(i)()]));
  const tk0 = new Map(idlers.map((i) => [i.name, sum(ticksOf)(i)()]));
  const t0 = process.hrtime.bigint();
  await sleep(CPU_SECONDS * 1000);
  const wallNs = Number(process.hrtime.bigint() - t0);
  const cpu = new Map<string, { ns: number | null; ticks: number | null }>();
  for (const i of idlers) {
    const a = ns0.get(i.name);
    const b = sum(schedNsOf)(i)();
    const ta = tk0.get(i.name);
    const tb = sum(ticksOf)(i)();
    cpu.set(i.name, { ns: a != null && b !== null ? b - a : null, ticks: ta != null && tb !== null ? tb - ta : null });
  }

  const baseRss = mem.get(idlers[0]?.name as string)?.rss ?? NaN;
  const table: string[] = ['| process | VmRSS MiB (median of ' + SAMPLES + ') | vs bare node | Pss MiB | threads | CPU ms / ' + CPU_SECONDS + ' s (schedstat) | CPU % | utime+stime ticks |', '|---|---|---|---|---|---|---|---|'];
  for (const i of idlers) {
    const m = mem.get(i.name);
    const c = cpu.get(i.name);
    const pct = c?.ns != null ? (100 * c.ns) / wallNs : NaN;
    table.push(`| ${i.name} | ${mib(m?.rss ?? null)} | ${m?.rss ? ratio(m.rss, baseRss) : 'n/a'} | ${mib(m?.pss ?? null)} | ${m?.threads ?? 'n/a'} | ${c?.ns != null ? (c.ns / 1e6).toFixed(1) : 'n/a'} | ${Number.isNaN(pct) ? 'n/a' : pct.toFixed(3)} | ${c?.ticks ?? 'n/a'} |`);
  }
  log(`\n${table.join('\n')}\n`);
  extra.idleTable = table;
  const main = agents[0] as Idler;
  const am = mem.get(main.name);
  const ac = cpu.get(main.name);
  rows.push({
    figure: 'idle RSS (agent connected, subscribed, SQLite open)', measured: `${mib(am?.rss ?? null)} MiB`, baseline: `bare node idling ${mib(baseRss)} MiB`,
    ratio: am?.rss ? ratio(am.rss, baseRss) : 'n/a', goal: '≤ 1.35x', verdict: am?.rss && am.rss / baseRss <= 1.35 ? 'MET' : 'MISSED',
  });
  const pct = ac?.ns != null ? (100 * ac.ns) / wallNs : NaN;
  const bareCpu = cpu.get(idlers[0]?.name as string)?.ns;
  rows.push({
    figure: `idle CPU over ${CPU_SECONDS} s`, measured: `${((ac?.ns ?? NaN) / 1e6).toFixed(1)} ms = ${pct.toFixed(3)} %`, baseline: `bare node ${((bareCpu ?? NaN) / 1e6).toFixed(1)} ms`,
    ratio: bareCpu ? ratio(ac?.ns ?? NaN, bareCpu) : 'n/a', goal: '< 0.1 %', verdict: pct < 0.1 ? 'MET' : 'MISSED',
  });
  if (STRACE_SECONDS > 0) await wakeups(main);
  return { agent: main, others: idlers.filter((i) => i !== main) };
}

/** epoll_wait calls of the idling agent under strace: how often its event loop wakes, and the timeouts it asks for. */
async function wakeups(agent: Idler): Promise<void> {
  const strace = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));
  if (!strace) {
    log('idle: strace not installed; timer wake-ups are argued from the code in docs/performance.md');
    rows.push({ figure: 'timer wake-ups', measured: 'not measured (no strace)', baseline: '—', ratio: '—', goal: '≤ 1/s per timer', verdict: 'n/a' });
    return;
  }
  const out = join(work, 'strace.txt');
  log(`idle: strace -f -e trace=epoll_wait,epoll_pwait for ${STRACE_SECONDS} s`);
  const p = own(strace, ['-f', '-tt', '-e', 'trace=epoll_wait,epoll_pwait', '-o', out, '-p', String(agent.pid()[0])]);
  await sleep(STRACE_SECONDS * 1000);
  p.kill('SIGINT'); // strace detaches cleanly on SIGINT
  await Promise.race([new Promise((r) => p.once('exit', r)), sleep(5000)]);
  await end(p);
  const lines = existsSync(out) ? readFileSync(out, 'utf8').split('\n') : [];
  // "<tid> hh:mm:ss.us epoll_wait(fd, [...], n, timeout) = k" (resumed calls are split over two lines)
  const calls = lines.filter((l) => /epoll_p?wait\(/.test(l));
  const timeouts = calls.map((l) => /epoll_p?wait\(\d+, (?:\[.*?\]|0x[0-9a-f]+|\.\.\.), \d+, (-?\d+)/.exec(l)?.[1]).filter((x): x is string => x !== undefined).map(Number);
  const finite = timeouts.filter((t) => t >= 0);
  const perSecond = calls.length / STRACE_SECONDS;
  const positive = finite.filter((t) => t > 0);
  // Under -f a blocking call is usually printed as "<unfinished ...>" without its timeout.
  const shortest = positive.length ? `${Math.min(...positive)} ms` : 'not printed';
  extra.wakeups = { calls: calls.length, perSecond, timeouts: [...new Set(timeouts)].sort((a, b) => a - b).slice(0, 30) };
  log(`idle: ${calls.length} epoll_wait calls in ${STRACE_SECONDS} s (${perSecond.toFixed(2)}/s); distinct timeouts (ms): ${[...new Set(timeouts)].sort((a, b) => a - b).slice(0, 20).join(', ')}`);
  rows.push({
    figure: 'event-loop wake-ups while idle (strace epoll_wait)', measured: `${perSecond.toFixed(2)}/s (${calls.length} in ${STRACE_SECONDS} s), shortest timeout seen ${shortest}`,
    baseline: '—', ratio: '—', goal: 'no timer more often than 1/s', verdict: perSecond <= 1 ? 'MET' : 'MISSED',
  });
}

async function floodPhase(broker: string, idler: Idler): Promise<void> {
  const dev = idler.dev as Device;
  const agent = idler.agent as RunningAgent;
  const pid = idler.proc.pid as number;
  const status = async () => timeRun(process.execPath, [AGENT_CLI, '--config', dev.configPath, 'status', '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const idleStatus = median([await status(), await status(), await status()]);
  const rss0 = rssOf(pid);
  const topic = `ota/v1/announce/${dev.compatible}/stable`;
  const bad = badSignatureFactory();
  log(`flood: ${FLOOD} distinct bad-signature announcements (QoS 0) at ${dev.id}; status read when idle ${idleStatus.toFixed(0)} ms`);
  const pub = await mqtt.connectAsync(broker, { protocolVersion: 5, clientId: `perf-flood-${randomBytes(3).toString('hex')}` });
  const before = agent.refusals();
  let peak = rss0 ?? 0;
  const statusMs: number[] = [];
  const t0 = Date.now();
  let sent = 0;
  let stop = false;
  const sampler = (async () => {
    while (!stop) {
      peak = Math.max(peak, rssOf(pid) ?? 0);
      await sleep(200);
    }
  })();
  const reader = (async () => {
    while (!stop) {
      statusMs.push(await status().catch(() => NaN));
      await sleep(1000);
    }
  })();
  // mosquitto drops QoS 0 messages for a subscriber that falls more than max_queued_messages (1000)
  // behind, which would protect the agent from most of the flood. So the flood is paced: never more
  // than WINDOW messages ahead of what the agent has decided, i.e. the agent runs flat out and sees
  // every message. Batches wait for the socket to drain, so memory here stays bounded too.
  const WINDOW = 800;
  const rssAt: Array<{ decided: number; rss: number | null }> = [];
  let nextMark = FLOOD / 4;
  let stalledSince = Date.now();
  let lastSeen = -1;
  while (sent < FLOOD && Date.now() - t0 < FLOOD_SECONDS * 1000) {
    const decidedNow = agent.refusals() - before;
    if (decidedNow >= nextMark) {
      rssAt.push({ decided: decidedNow, rss: rssOf(pid) });
      nextMark += FLOOD / 4;
    }
    if (decidedNow !== lastSeen) {
      lastSeen = decidedNow;
      stalledSince = Date.now();
    } else if (Date.now() - stalledSince > 5000) {
      log(`flood: the agent decided nothing for 5 s at ${decidedNow}; sending the rest unpaced`);
      stalledSince = Infinity;
    }
    if (sent - decidedNow >= WINDOW && stalledSince !== Infinity) {
      await sleep(5);
      continue;
    }
    const batch: Promise<unknown>[] = [];
    for (let i = 0; i < 200 && sent < FLOOD; i++, sent++) batch.push(pub.publishAsync(topic, bad(), { qos: 0 }));
    await Promise.all(batch);
  }
  const sentMs = Date.now() - t0;
  // Wait until the agent has decided what reached it (no new refusals for 3 s) or time is up.
  let last = -1;
  let quietSince = Date.now();
  while (Date.now() - t0 < FLOOD_SECONDS * 1000) {
    const n = agent.refusals();
    if (n >= before + sent) break;
    if (n !== last) {
      last = n;
      quietSince = Date.now();
    } else if (Date.now() - quietSince > 3000) break;
    await sleep(250);
  }
  const decided = agent.refusals() - before;
  const doneMs = Date.now() - t0;
  stop = true;
  await sampler;
  await reader;
  await pub.endAsync(true);
  const rssAfter = rssOf(pid);
  const okStatus = statusMs.filter((x) => !Number.isNaN(x));
  const worst = okStatus.length ? Math.max(...okStatus) : NaN;
  rssAt.push({ decided, rss: rssAfter });
  const half = rssAt[1]?.rss ?? null;
  const flat = half !== null && rssAfter !== null && rssAfter - half < 8 * MiB;
  log(`flood: RSS along the flood: ${rssAt.map((r) => `${r.decided} -> ${mib(r.rss)} MiB`).join(', ')}`);
  extra.flood = { sent, sentMs, decided, doneMs, rss0, peak, rssAfter, rssAt, statusReads: statusMs.length, statusWorstMs: worst, statusMedianMs: median(okStatus), idleStatusMs: idleStatus };
  log(`flood: sent ${sent} in ${sentMs} ms; agent decided ${decided} in ${doneMs} ms (${((1000 * decided) / doneMs).toFixed(0)}/s); RSS ${mib(rss0)} -> peak ${mib(peak)} -> ${mib(rssAfter)} MiB; ${statusMs.length} status reads, worst ${worst.toFixed(0)} ms, median ${median(okStatus).toFixed(0)} ms`);
  rows.push({
    figure: `flood of ${sent} bad-signature announcements over MQTT (real agent process)`,
    measured: `${decided} decided at ${((1000 * decided) / doneMs).toFixed(0)}/s; RSS ${mib(rss0)} → peak ${mib(peak)} MiB (${rssAt.map((r) => mib(r.rss)).join(' → ')})`,
    baseline: `RSS idle ${mib(rss0)} MiB`, ratio: rss0 ? ratio(peak, rss0) : 'n/a',
    goal: 'RSS bounded (flat over the 2nd half: < +8 MiB from 50% to 100%)', verdict: flat && decided >= sent * 0.99 ? 'MET' : 'MISSED',
  });
  // The status CLI is a fresh node process reading SQLite (WAL) itself; its own start-up is most of it.
  rows.push({
    figure: '`ota-agent status --json` during that flood (fresh CLI process)', measured: `worst ${worst.toFixed(0)} ms, median ${median(okStatus).toFixed(0)} ms (${okStatus.length} reads)`,
    baseline: `same read, agent idle ${idleStatus.toFixed(0)} ms`, ratio: ratio(median(okStatus), idleStatus), goal: '< 1 s', verdict: worst < 1000 ? 'MET' : 'MISSED',
  });
}

async function startPhase(broker: string, watcher: Watcher): Promise<void> {
  const n = SAMPLES;
  const mqttPath = createRequire(import.meta.url).resolve('mqtt');
  const script = join(work, 'connect-once.cjs');
  writeFileSync(
    script,
    `const mqtt = require(${JSON.stringify(mqttPath)});
const c = mqtt.connect(process.argv[2], { protocolVersion: 5 });
c.on('connect', () => c.publish(process.argv[3], 'x', { qos: 1 }, () => c.end(true, () => process.exit(0))));
c.on('error', (e) => { console.error(e.message); process.exit(1); });\n`,
  );
  const dev = makeDevice(broker, 'start');
  const nodeE0: number[] = [];
  const connectOnce: number[] = [];
  const agentMs: number[] = [];
  const compareMs: Record<string, number[]> = {};
  // One warm-up of each (page cache, the agent's first run creates its database), then n measured.
  for (let i = 0; i <= n; i++) {
    nodeE0.push(await timeRun(process.execPath, ['-e', '0']));
    const topic = `perf/start/${i}`;
    let t0 = process.hrtime.bigint();
    let seen = watcher.next((m) => m.topic === topic, 15_000, 'connect-once publish');
    const p = own(process.execPath, [script, broker, topic]);
    connectOnce.push(Number((await seen).at - t0) / 1e6);
    await new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)));

    seen = watcher.next(stateOf(dev.id), 30_000, `${dev.id} state`);
    t0 = process.hrtime.bigint();
    const a = spawnAgent(dev, AGENT_FLAGS);
    agentMs.push(Number((await seen).at - t0) / 1e6);
    await end(a.proc);
    for (const c of COMPARE) {
      seen = watcher.next(stateOf(dev.id), 30_000, `${dev.id} state`);
      t0 = process.hrtime.bigint();
      const [cli = c.cli, ...cliFlags] = c.cli.split(' ').filter(Boolean);
      const b = spawnAgent(dev, [...AGENT_FLAGS, ...cliFlags], cli);
      (compareMs[c.label] ??= []).push(Number((await seen).at - t0) / 1e6);
      await end(b.proc);
    }
  }
  for (const xs of [nodeE0, connectOnce, agentMs, ...Object.values(compareMs)]) xs.shift();
  for (const [label, xs] of Object.entries(compareMs)) {
    log(`start: [${label}] spawn -> state seen ${median(xs).toFixed(0)} ms (this build ${median(agentMs).toFixed(0)} ms)`);
    rows.push({ figure: `start → subscribed, this build vs [${label}]`, measured: `${median(agentMs).toFixed(0)} ms`, baseline: `${label} ${median(xs).toFixed(0)} ms`, ratio: ratio(median(agentMs), median(xs)), goal: '—', verdict: 'info' });
  }
  const base = median(connectOnce);
  const agent = median(agentMs);
  extra.start = { nodeE0, connectOnce, agentMs };
  log(`start: node -e 0 ${median(nodeE0).toFixed(0)} ms; node + mqtt connect + publish seen ${base.toFixed(0)} ms; agent spawn -> state seen ${agent.toFixed(0)} ms (medians of ${n})`);
  rows.push({
    figure: 'start → subscribed (spawn → retained state seen on the broker)', measured: `${agent.toFixed(0)} ms`,
    baseline: `node + mqtt connect + one publish seen ${base.toFixed(0)} ms (node -e 0: ${median(nodeE0).toFixed(0)} ms)`,
    ratio: ratio(agent, base), goal: '≤ 2x', verdict: agent / base <= 2 ? 'MET' : 'MISSED',
  });
}

async function announcePhase(): Promise<void> {
  const POOL = 2000;
  const bad = badSignatureFactory();
  const pool: Buffer[] = [];
  for (let i = 0; i < POOL; i++) pool.push(i % 2 ? bad() : notNewer());
  const topic = 'ota/v1/announce/perf-gw/stable';
  const dir = join(work, 'inproc');
  const config = parseConfig(simulatedDeviceConfig({ dir, deviceId: 'perf-inproc', brokerUrl: 'mqtt://127.0.0.1:1', protocolVersion: 5, publicKeyPem: key.publicKeyPem, compatible: 'perf-gw' }));
  const trust = trustPolicy(config);
  const ctx: AdmissionContext = {
    deviceId: config.deviceId, compatible: config.compatible, groups: [], channels: config.channels, backend: 'rauc', runningVersion: '1.0.0', trust,
    maxMessageBytes: config.limits.maxMessageBytes, clockSkewSeconds: config.limits.clockSkewSeconds, artifactPolicy: config.artifacts, now: new Date(),
    inFlight: null, lastSequence: () => undefined, lastDigest: () => undefined, previouslyReverted: () => false, topic: { compatible: 'perf-gw', channel: 'stable' },
  };
  // Pure admission: bounded by 200,000 messages or 5 s.
  const kinds = new Map<string, number>();
  for (let i = 0; i < 200; i++) admitAnnouncement(pool[i % POOL] as Buffer, topic, ctx); // warm-up
  let n = 0;
  let t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  while (n < 200_000 && Number(process.hrtime.bigint() - t0) < 5e9) {
    const d = admitAnnouncement(pool[n % POOL] as Buffer, topic, ctx);
    const k = d.kind === 'reject' ? d.reason : d.kind;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
    n++;
  }
  const pureS = Number(process.hrtime.bigint() - t0) / 1e9;
  const pureCpu = process.cpuUsage(cpu0);
  const pureRate = n / pureS;

  // The in-process agent with its SQLite store (WAL, synchronous=FULL): bounded by 20,000 or 10 s.
  const store = new AgentStore(join(config.stateDir, 'agent.db'));
  const backend = await SimulatedBackend.open(SimulatedOptions.parse(config.backend), config.compatible, join(config.stateDir, 'downloads'));
  const agent = new Agent({ config, store, backend, trust, log: silentLogger(), agentVersion: 'perf', runChecks: async () => ({ passed: true }) as never });
  await agent.start();
  for (let i = 0; i < 100; i++) agent.handleAnnouncement(topic, pool[i % POOL] as Buffer);
  let m = 0;
  t0 = process.hrtime.bigint();
  while (m < 20_000 && Number(process.hrtime.bigint() - t0) < 10e9) {
    agent.handleAnnouncement(topic, pool[m % POOL] as Buffer);
    m++;
  }
  const agentS = Number(process.hrtime.bigint() - t0) / 1e9;
  const agentRate = m / agentS;
  // The same, with SQLite's fsync per decision taken out (synchronous=NORMAL): what the disk costs.
  store.db.pragma('synchronous = NORMAL');
  let k = 0;
  t0 = process.hrtime.bigint();
  while (k < 20_000 && Number(process.hrtime.bigint() - t0) < 10e9) {
    agent.handleAnnouncement(topic, pool[k % POOL] as Buffer);
    k++;
  }
  const normalRate = k / (Number(process.hrtime.bigint() - t0) / 1e9);
  await agent.stop();
  store.close();
  if (values['compare-store']) await compareStores(values['compare-store'], config, trust, backend, pool, topic);
  extra.announce = { pure: { n, seconds: pureS, rate: pureRate, cpuUserMs: pureCpu.user / 1000, kinds: Object.fromEntries(kinds) }, agent: { n: m, seconds: agentS, rate: agentRate }, agentSynchronousNormal: { n: k, rate: normalRate } };
  log(`announce: admitAnnouncement ${pureRate.toFixed(0)}/s (${n} in ${pureS.toFixed(2)} s; ${JSON.stringify(Object.fromEntries(kinds))}); Agent.handleAnnouncement ${agentRate.toFixed(0)}/s (${m}); with synchronous=NORMAL ${normalRate.toFixed(0)}/s`);
  rows.push({ figure: 'announcements verified and refused, admitAnnouncement (pure, 1 core)', measured: `${pureRate.toFixed(0)}/s`, baseline: '—', ratio: '—', goal: '≥ 5,000/s', verdict: pureRate >= 5000 ? 'MET' : 'MISSED' });
  rows.push({
    figure: 'announcements verified and refused, Agent.handleAnnouncement (SQLite, synchronous=FULL)', measured: `${agentRate.toFixed(0)}/s`,
    baseline: `same with synchronous=NORMAL ${normalRate.toFixed(0)}/s`, ratio: ratio(agentRate, normalRate), goal: '≥ 5,000/s', verdict: agentRate >= 5000 ? 'MET' : 'MISSED',
  });
}

/**
 * Same-run A/B of two AgentStore builds (e.g. before/after caching prepared statements) under
 * Agent.handleAnnouncement with synchronous=NORMAL, so that fsync does not drown the difference.
 */
async function compareStores(spec: string, config: ReturnType<typeof parseConfig>, trust: ReturnType<typeof trustPolicy>, backend: SimulatedBackend, pool: Buffer[], topic: string): Promise<void> {
  const label = spec.slice(0, spec.indexOf('='));
  const path = join(REPO, spec.slice(spec.indexOf('=') + 1));
  const Other = ((await import(path)) as { AgentStore: typeof AgentStore }).AgentStore;
  const rates: Record<string, number[]> = { this: [], [label]: [] };
  for (let round = 0; round < 6; round++) {
    const [name, Store] = round % 2 === 0 ? ['this', AgentStore] as const : [label, Other] as const;
    const store = new Store(join(work, `cmp-${round}`, 'agent.db'));
    store.db.pragma('synchronous = NORMAL');
    const agent = new Agent({ config, store, backend, trust, log: silentLogger(), agentVersion: 'perf', runChecks: async () => ({ passed: true }) as never });
    await agent.start();
    let n = 0;
    const t0 = process.hrtime.bigint();
    while (n < 20_000 && Number(process.hrtime.bigint() - t0) < 3e9) agent.handleAnnouncement(topic, pool[n++ % pool.length] as Buffer);
    (rates[name] as number[]).push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
    await agent.stop();
    store.close();
  }
  const a = median(rates.this as number[]);
  const b = median(rates[label] as number[]);
  extra.compareStore = rates;
  log(`announce: AgentStore A/B (synchronous=NORMAL, medians of 3): this build ${a.toFixed(0)}/s, ${label} ${b.toFixed(0)}/s`);
  rows.push({ figure: 'Agent.handleAnnouncement, this AgentStore vs another build (synchronous=NORMAL)', measured: `${a.toFixed(0)}/s`, baseline: `${label} ${b.toFixed(0)}/s`, ratio: ratio(a, b), goal: '—', verdict: 'info' });
}

async function downloadPhase(): Promise<void> {
  let size = Number(values['download-mib']);
  const free = statfsSync(work);
  const avail = free.bavail * free.bsize;
  if (avail < 2.5 * size * MiB) {
    log(`download: only ${mib(avail)} MiB free in ${work}; using 256 MiB instead of ${size}`);
    extra.downloadShrunk = `${size} MiB did not fit (${mib(avail)} MiB free)`;
    size = 256;
  }
  const src = join(work, 'artifact.bin');
  const dest = join(work, 'dl', 'artifact.bin');
  // Written once, sparse-free: one random MiB, varied per MiB.
  const fd = openSync(src, 'w');
  const block = randomBytes(MiB);
  const h = createHash('sha256');
  for (let i = 0; i < size; i++) {
    block.writeUInt32LE(i, 0);
    writeSync(fd, block);
    h.update(block);
  }
  closeSync(fd);
  const sha256 = h.digest('hex');
  const bytes = statSync(src).size;
  const serverJs = join(work, 'serve.cjs');
  // --download-tls: the same over https (a throw-away self-signed certificate for 127.0.0.1, made by
  // the openssl CLI), as fleets normally serve artifacts.
  const useTls = values['download-tls'] === true;
  const certFile = join(work, 'tls.crt');
  const keyFile = join(work, 'tls.key');
  if (useTls) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=ota-perf', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  }
  writeFileSync(
    serverJs,
    `const http = require('node:${useTls ? 'https' : 'http'}'); const fs = require('node:fs');
const [file, cert, key] = process.argv.slice(2); const size = fs.statSync(file).size;
const opts = cert ? { cert: fs.readFileSync(cert), key: fs.readFileSync(key) } : {};
const s = http.createServer(opts, (req, res) => { res.writeHead(200, { 'content-length': String(size) }); fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res); });
s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));\n`,
  );
  const server = own(process.execPath, [serverJs, src, ...(useTls ? [certFile, keyFile] : [])], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve, reject) => {
    server.stdout?.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
    server.once('exit', () => reject(new Error('artifact server exited')));
  });
  try {
    // Both HTTP clients in the same run, in rotating order, so that load on the shared machine
    // hits both alike: 'fixed-buffer' (the default for http:) and Node's http module.
    // --download-compare label=path/to/perf-download-child.js adds another build's child (before/after).
    const ownChild = fileURLToPath(new URL('./perf-download-child.js', import.meta.url));
    // Every child runs with the agent's node flags (--agent-flags, the unit's), as the agent would.
    const variants = [
      { label: 'fixed-buffer', child: ownChild, client: 'fixed-buffer', flags: AGENT_FLAGS },
      { label: 'node-http', child: ownChild, client: 'node-http', flags: AGENT_FLAGS },
      ...values['download-flag-variants'].split(';').map((f) => f.trim()).filter(Boolean).map((f) => ({ label: `fixed-buffer ${f}`, child: ownChild, client: 'fixed-buffer', flags: [...AGENT_FLAGS, ...f.split(' ')] })),
      ...(values['download-compare'] ?? '').split(';').filter(Boolean).map((c) => ({ label: c.slice(0, c.indexOf('=')), child: resolvePath(c.slice(c.indexOf('=') + 1)), client: 'node-http', flags: AGENT_FLAGS })),
    ];
    const rounds = Math.max(1, Math.min(10, Number(values['download-rounds'])));
    const shaMs: number[] = [];
    const dlMs: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v.label, []]));
    const growth: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v.label, []]));
    const loads: number[] = [];
    for (let round = 0; round < rounds; round++) {
      shaMs.push(await timeRun('sha256sum', [src]));
      // Rotated, so that over as many rounds as variants each one runs in every position once.
      const order = variants.map((_, i) => variants[(i + round) % variants.length] as (typeof variants)[number]);
      for (const { label, child: childJs, client, flags } of order) {
        rmSync(join(work, 'dl'), { recursive: true, force: true });
        loads.push(loadavg()[0] ?? 0);
        // In a fresh child process: its RSS before/peak is the download's alone.
        const url = `${useTls ? 'https' : 'http'}://127.0.0.1:${port}/artifact.bin`;
        const child = own(process.execPath, [...flags, childJs, url, dest, sha256, String(bytes), client, ...(useTls ? [certFile] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
        child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
        const code = await new Promise<number | null>((r) => child.once('exit', r));
        if (code !== 0) throw new Error(`download child exited ${String(code)}: ${err.slice(-1000)}`);
        const r = JSON.parse(out.trim()) as { ms: number; before: number; peak: number; hwmReset: boolean };
        dlMs[label]?.push(r.ms);
        growth[label]?.push(r.peak - r.before);
        log(`download: round ${round + 1} ${label}: sha256sum ${shaMs.at(-1)?.toFixed(0)} ms, downloadArtifact ${r.ms.toFixed(0)} ms, child RSS ${mib(r.before)} -> peak ${mib(r.peak)} MiB, load ${loads.at(-1)?.toFixed(2)}${r.hwmReset ? '' : ' (VmHWM reset not allowed: 50 ms sampling only)'}`);
      }
    }
    const shaTp = bytes / MiB / (median(shaMs) / 1000);
    const load = `load avg ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`;
    extra.download = { bytes, shaMs, dlMs, growth, loads };
    for (const { label } of variants) {
      const dlTp = bytes / MiB / (median(dlMs[label] ?? []) / 1000);
      const g = Math.max(...(growth[label] ?? []));
      const which = label === 'fixed-buffer' ? 'fixed-buffer client, the default' : label === 'node-http' ? "Node's http module (httpClient: 'node-http')" : `build "${label}"`;
      rows.push({
        figure: `download + verify ${size} MiB from loopback ${useTls ? 'HTTPS' : 'HTTP'} (downloadArtifact, ${which}; incl. write + fsync; ${load})`, measured: `${dlTp.toFixed(0)} MiB/s`, baseline: `sha256sum ${shaTp.toFixed(0)} MiB/s`,
        ratio: ratio(dlTp, shaTp), goal: '≥ 0.85x', verdict: dlTp / shaTp >= 0.85 ? 'MET' : 'MISSED',
      });
      rows.push({ figure: `RSS growth during that download (${label})`, measured: `${mib(g)} MiB (worst of ${rounds})`, baseline: '—', ratio: '—', goal: '< 16 MiB', verdict: g < 16 * MiB ? 'MET' : 'MISSED' });
    }
  } finally {
    await end(server);
    rmSync(src, { force: true });
    rmSync(join(work, 'dl'), { recursive: true, force: true });
  }
}

async function raucPhase(): Promise<void> {
  const mibSize = Math.max(8, Math.min(1024, Number(values['rauc-mib'])));
  const dir = join(work, 'rauc');
  mkdirSync(dir, { recursive: true });
  const r = await raucFigure({ mib: mibSize, rounds: Math.max(1, Math.min(6, Number(values['rauc-rounds']))), work: dir, log });
  extra.rauc = r;
  rows.push({
    figure: `RAUC install through the agent (RaucBackend.install), ${mib(r.bundleBytes)} MiB bundle`, measured: `${(r.agentMedianMs / 1000).toFixed(2)} s`,
    baseline: `dbus-next InstallBundle direct ${(r.directMedianMs / 1000).toFixed(2)} s`, ratio: `${r.ratio.toFixed(2)}x`, goal: '≤ 1.1x', verdict: r.ratio <= 1.1 ? 'MET' : 'MISSED',
  });
}

// ---- main -------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (!existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} is missing: run \`npm run build\` first (npm run bench:perf does)`);
  const env = `node ${process.version}, ${cpus().length} CPU(s) (${cpus()[0]?.model ?? '?'})`;
  log(`perf: ${[...only].join(', ')}; ${env}; temp ${work}`);
  const needsBroker = only.has('idle') || only.has('flood') || only.has('start');
  const broker = needsBroker ? await Mosquitto.start() : null;
  const watcher = broker ? await Watcher.connect(broker.url) : null;
  try {
    if (broker && watcher && (only.has('idle') || only.has('flood'))) {
      if (only.has('idle')) {
        const idle = await idlePhase(broker.url, watcher);
        // All of them go first: the flood is measured on an otherwise idle machine.
        for (const i of [...idle.others, idle.agent]) await end(i.proc);
      }
      if (only.has('flood')) {
        // An agent of its own, logging at debug: refusals over the refusal budget
        // (src/agent/refusal-budget.ts) are logged at debug only, and its log is how the bench
        // counts what the agent decided. So this agent also writes a log line per message.
        const dev = makeDevice(broker.url, 'flood', 'debug');
        const seen = watcher.next(stateOf(dev.id), 30_000, `${dev.id} state`);
        const agent = spawnAgent(dev, AGENT_FLAGS);
        await seen;
        await sleep(10_000);
        try {
          await floodPhase(broker.url, { name: 'ota-agent', pid: () => [agent.proc.pid as number], proc: agent.proc, agent, dev });
        } finally {
          await end(agent.proc);
        }
      }
    }
    if (broker && watcher && only.has('start')) await startPhase(broker.url, watcher);
    if (only.has('announce')) await announcePhase();
    if (only.has('download')) await downloadPhase();
    if (only.has('rauc')) await raucPhase();
  } finally {
    await watcher?.close();
    await broker?.stop();
  }
  log(`\n${renderTable(rows)}\n`);
  const line = JSON.stringify({ bench: 'perf', at: new Date().toISOString(), env, agentFlags: AGENT_FLAGS, rows, ...extra });
  if (values['json-out']) appendFileSync(values['json-out'], `${line}\n`);
  return rows.some((r) => r.verdict === 'MISSED') ? 1 : 0;
}

main()
  .then(
    (code) => code,
    (e: unknown) => {
      process.stderr.write(`perf: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      return 2;
    },
  )
  .then((code) => {
    rmSync(work, { recursive: true, force: true });
    process.exit(code);
  });
