#!/usr/bin/env node
// ota-fleet: the fleet owner's tool. keygen makes a signing key; publish builds, signs and
// publishes an announcement (retained); promote re-publishes it to a wider rollout; command signs
// and sends a command to one device or a group; watch shows the fleet live; simulate runs a fleet
// of simulated devices in this process (docs/fleet.md).
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command as Cli } from 'commander';
import { loadPrivateKey, loadPublicKey } from '../crypto/dsse.js';
import { digestFile, digestUrl, generateKeyPair, signAnnouncement, signCommand } from '../fleet/sign.js';
import { publishMany, publishOnce, readRetained } from '../fleet/broker.js';
import { decodeAnnouncementEnvelope, publicOf, verifiedBy, type DecodedAnnouncement } from '../fleet/envelope.js';
import { devicesInGroups, parseInventory } from '../fleet/inventory.js';
import { describeRollout, promoteAnnouncement, type PromoteChanges } from '../fleet/promote.js';
import type { FleetWatch } from '../fleet/watch.js';
import { topics } from '../mqtt/topics.js';
import { inRollout } from '../core/rollout.js';
import type { AnnouncementInput } from '../schemas/announcement.js';
import { COMMANDS } from '../schemas/command.js';
import { AGENT_VERSION } from '../version.js';

function fail(message: string): never {
  process.stderr.write(`ota-fleet: ${message}\n`);
  process.exit(2);
}

/** "90s", "15m", "12h", "7d" -> milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+)([smhd])$/.exec(s);
  if (!m) fail(`bad duration "${s}" (use e.g. 90s, 15m, 12h, 7d)`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

function keys(paths: string[]) {
  if (paths.length === 0) fail('--key is required (a PEM Ed25519 private key from ota-fleet keygen)');
  return paths.map((p) => {
    try {
      return loadPrivateKey(readFileSync(p, 'utf8'));
    } catch (e) {
      fail(`${p}: ${(e as Error).message}`);
    }
  });
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** A number option, checked: `--percent 150` is an error, not a silent clamp. */
function num(name: string, v: string | undefined, o: { min?: number; max?: number; int?: boolean } = {}): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isFinite(n) || (o.int && !Number.isInteger(n)) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
    fail(`${name} must be ${o.int ? 'an integer' : 'a number'}${o.min !== undefined ? ` >= ${o.min}` : ''}${o.max !== undefined ? ` <= ${o.max}` : ''}, not "${v}"`);
  }
  return n;
}

const mqttVersion = (v: string): 4 | 5 => (Number(v) === 4 ? 4 : 5);

// Positional options: `--version` after `publish` is the announced version, before it the tool's own.
const program = new Cli('ota-fleet').enablePositionalOptions().version(AGENT_VERSION).description('fleet tools for ota-agent: keys, signed announcements and commands, watch, simulate');

program
  .command('keygen')
  .description('create an Ed25519 signing key pair; devices trust the .pub file')
  .requiredOption('-o, --out <dir>', 'directory for <name>.key (mode 0600) and <name>.pub')
  .option('-n, --name <name>', 'file name stem', 'fleet')
  .action((o: { out: string; name: string }) => {
    const kp = generateKeyPair();
    mkdirSync(o.out, { recursive: true });
    const keyPath = join(o.out, `${o.name}.key`);
    writeFileSync(keyPath, kp.privateKeyPem, { mode: 0o600 });
    chmodSync(keyPath, 0o600);
    writeFileSync(join(o.out, `${o.name}.pub`), kp.publicKeyPem);
    process.stdout.write(`${keyPath}\n${join(o.out, `${o.name}.pub`)}\nkeyid ${kp.keyid}\n`);
  });

program
  .command('publish')
  .description('build, sign and publish (retained) an announcement')
  .option('-k, --key <file>', 'signing key (repeat for several signatures)', collect, [] as string[])
  .option('-b, --broker <url>', 'broker URL, e.g. mqtts://broker:8883')
  .option('--mqtt-version <n>', '5 or 4 (3.1.1)', '5')
  .option('--prefix <prefix>', 'topic prefix', 'ota/v1')
  .requiredOption('--compatible <c>', 'device class')
  .option('--channel <ch>', 'channel', 'stable')
  .requiredOption('--version <v>', 'version being announced')
  .option('--backend <b>', 'rauc or ostree', 'rauc')
  .option('--url <url>', 'rauc: artifact URL devices download')
  .option('--artifact <file>', 'rauc: local copy of the artifact, to compute sha256 and size')
  .option('--sha256 <hex>', 'rauc: artifact digest (instead of --artifact)')
  .option('--size <bytes>', 'rauc: artifact size (instead of --artifact)')
  .option('--remote-name <n>', 'ostree: remote name')
  .option('--remote-url <url>', 'ostree: remote URL')
  .option('--ref <ref>', 'ostree: ref')
  .option('--commit <sha>', 'ostree: commit checksum')
  .option('--id <id>', 'announcement id (default: <compatible>-<version>)')
  .option('--sequence <n>', 'sequence (default: milliseconds since the epoch)')
  .option('--percent <p>', 'rollout percentage', '100')
  .option('--groups <list>', 'comma-separated device groups')
  .option('--window-cron <expr>', 'maintenance window opening (5-field cron)')
  .option('--window-minutes <n>', 'maintenance window length', '60')
  .option('--window-tz <tz>', 'maintenance window time zone', 'UTC')
  .option('--window-applies <what>', 'install or reboot', 'install')
  .option('--expires-in <dur>', 'validity, e.g. 7d', '7d')
  .option('--allow-downgrade', 'allow devices on a newer version to install this one')
  .option('--description <text>', 'free text shown to operators')
  .option('--out <file>', 'also write the envelope to this file')
  .option('--dry-run', 'print the envelope and which of --device ids would take part; publish nothing')
  .option('--device <id>', 'with --dry-run: a device id to check against the rollout', collect, [] as string[])
  .action(async (o: Record<string, string | string[] | boolean | undefined>) => {
    const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
    const now = Date.now();
    const backend = str('backend');
    let artifact: AnnouncementInput['artifact'];
    if (backend === 'rauc') {
      const url = str('url') ?? fail('--url is required for rauc');
      let sha256 = str('sha256');
      let size = str('size') ? Number(str('size')) : undefined;
      if (str('artifact')) ({ sha256, size } = await digestFile(str('artifact') as string));
      if (!sha256 && size === undefined) {
        // No local copy: hash what the URL serves, the very bytes devices will download.
        try {
          ({ sha256, size } = await digestUrl(url));
        } catch (e) {
          fail(`cannot compute sha256 and size from ${url}: ${(e as Error).message}`);
        }
        process.stderr.write(`artifact from ${url}: ${size} bytes, sha256 ${sha256}\n`);
      }
      if (!sha256 || size === undefined) fail('give --artifact FILE, or --sha256 and --size, or neither to hash the URL');
      artifact = { url, sha256, size };
    } else if (backend === 'ostree') {
      artifact = { remote: { name: str('remoteName') ?? fail('--remote-name'), url: str('remoteUrl') ?? fail('--remote-url') }, ref: str('ref') ?? fail('--ref'), commit: str('commit') ?? fail('--commit') };
    } else {
      fail(`--backend must be rauc or ostree, not ${backend}`);
    }
    const compatible = str('compatible') as string;
    const version = str('version') as string;
    const input = {
      id: str('id') ?? `${compatible}-${version}`,
      sequence: str('sequence') ? Number(str('sequence')) : now,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + parseDuration(str('expiresIn') as string)).toISOString(),
      compatible,
      channel: str('channel') as string,
      version,
      ...(o.allowDowngrade ? { allowDowngrade: true } : {}),
      ...(str('description') ? { description: str('description') } : {}),
      backend,
      artifact,
      rollout: {
        percent: Number(str('percent')),
        ...(str('groups') ? { groups: (str('groups') as string).split(',').filter(Boolean) } : {}),
        ...(str('windowCron')
          ? { window: { cron: str('windowCron'), durationMinutes: Number(str('windowMinutes')), timezone: str('windowTz'), applies: str('windowApplies') } }
          : {}),
      },
    } as AnnouncementInput;
    let signed;
    try {
      signed = signAnnouncement(input, keys(o.key as string[]));
    } catch (e) {
      fail((e as Error).message);
    }
    const json = JSON.stringify(signed.envelope);
    if (str('out')) writeFileSync(str('out') as string, json + '\n');
    const topic = topics(str('prefix') as string).announce(compatible, input.channel);
    if (o.dryRun) {
      process.stdout.write(`topic ${topic}\n${JSON.stringify(signed.announcement, null, 2)}\n`);
      for (const d of o.device as string[]) {
        const r = inRollout(d, [], signed.announcement.id, signed.announcement.rollout);
        process.stdout.write(`${d}: ${r.included ? 'takes part' : 'waits'} (${r.why})\n`);
      }
      return;
    }
    const broker = str('broker') ?? fail('--broker is required (or use --dry-run / --out)');
    await publishOnce(broker, topic, json, { retain: true, protocolVersion: mqttVersion(str('mqttVersion') as string) });
    process.stdout.write(`published ${signed.announcement.id} ${version} seq ${signed.announcement.sequence} to ${topic}\n`);
  });

program
  .command('promote')
  .description('re-publish an announcement with the same id, the next sequence and a wider rollout (or new groups/window), signed again')
  .option('-k, --key <file>', 'signing key (repeat for several signatures)', collect, [] as string[])
  .option('-b, --broker <url>', 'broker URL; without --from the current announcement is read from its retained topic')
  .option('--mqtt-version <n>', '5 or 4 (3.1.1)', '5')
  .option('--prefix <prefix>', 'topic prefix', 'ota/v1')
  .option('--from <file>', 'the envelope written by `publish --out` (instead of the retained one)')
  .option('--compatible <c>', 'with the broker: device class of the announcement topic')
  .option('--channel <ch>', 'with the broker: channel of the announcement topic', 'stable')
  .option('--percent <p>', 'new rollout percentage')
  .option('--groups <list>', 'new comma-separated device groups ("" removes the restriction)')
  .option('--window-cron <expr>', 'new maintenance window opening (5-field cron)')
  .option('--window-minutes <n>', 'maintenance window length', '60')
  .option('--window-tz <tz>', 'maintenance window time zone', 'UTC')
  .option('--window-applies <what>', 'install or reboot', 'install')
  .option('--no-window', 'remove the maintenance window')
  .option('--expires-in <dur>', 'new validity from now (default: keep the current expiry)')
  .option('--sequence <n>', 'sequence (default: max(current + 1, milliseconds since the epoch))')
  .option('--trust <file>', 'public key (PEM) of another fleet key whose signature on the current envelope counts', collect, [] as string[])
  .option('--force', 'allow a lower percentage or narrower groups')
  .option('--out <file>', 'also write the new envelope to this file')
  .option('--dry-run', 'print the new announcement and which --device ids take part; publish nothing')
  .option('--device <id>', 'with --dry-run: a device id to check against the rollout', collect, [] as string[])
  .action(async (o: Record<string, string | string[] | boolean | undefined>) => {
    const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
    const signers = keys(o.key as string[]);
    const protocolVersion = mqttVersion(str('mqttVersion') as string);
    const t = topics(str('prefix') as string);
    let current: DecodedAnnouncement;
    let source: string;
    try {
      if (str('from')) {
        source = str('from') as string;
        current = decodeAnnouncementEnvelope(readFileSync(source, 'utf8'));
      } else {
        const broker = str('broker') ?? fail('give --from FILE, or --broker URL and --compatible C to read the retained announcement');
        const topic = t.announce(str('compatible') ?? fail('--compatible is required to find the retained announcement'), str('channel') as string);
        source = topic;
        const raw = await readRetained(broker, topic, { protocolVersion });
        if (!raw) fail(`no retained announcement on ${topic}`);
        current = decodeAnnouncementEnvelope(raw);
        if (current.announcement.compatible !== str('compatible') || current.announcement.channel !== str('channel')) fail(`the announcement on ${topic} is for ${current.announcement.compatible}/${current.announcement.channel}`);
      }
    } catch (e) {
      fail(`cannot read the current announcement: ${(e as Error).message}`);
    }
    // Re-signing is vouching: never sign again what none of our keys signed before (the retained
    // topic is writable by anyone with publish rights on the broker).
    const ours = [...signers.map(publicOf), ...(o.trust as string[]).map((p) => loadPublicKey(readFileSync(p, 'utf8')))];
    if (verifiedBy(current.envelope, ours).length === 0) fail(`the announcement from ${source} is not signed by your key(s); refusing to re-sign it (add --trust PUB for another fleet key)`);

    const changes: PromoteChanges = {};
    if (str('percent') !== undefined) changes.percent = num('--percent', str('percent'), { min: 0, max: 100 });
    if (str('groups') !== undefined) changes.groups = (str('groups') as string).split(',').map((g) => g.trim()).filter(Boolean);
    if (o.window === false) changes.window = null;
    else if (str('windowCron')) {
      const applies = str('windowApplies');
      if (applies !== 'install' && applies !== 'reboot') fail('--window-applies must be install or reboot');
      changes.window = { cron: str('windowCron') as string, durationMinutes: num('--window-minutes', str('windowMinutes'), { min: 1, max: 10080, int: true }), timezone: str('windowTz') as string, applies };
    }
    if (str('expiresIn')) changes.expiresAt = new Date(Date.now() + parseDuration(str('expiresIn') as string));
    if (str('sequence')) changes.sequence = num('--sequence', str('sequence'), { min: 0, int: true });
    if (o.force) changes.force = true;
    let signed;
    try {
      const next = promoteAnnouncement(current.input, changes, new Date());
      signed = signAnnouncement(next, signers);
    } catch (e) {
      fail((e as Error).message);
    }
    const a = signed.announcement;
    const json = JSON.stringify(signed.envelope);
    if (str('out')) writeFileSync(str('out') as string, json + '\n');
    const topic = t.announce(a.compatible, a.channel);
    const what = `${a.id} ${a.version}: ${describeRollout(current.announcement.rollout)} -> ${describeRollout(a.rollout)}; seq ${current.announcement.sequence} -> ${a.sequence}`;
    if (o.dryRun) {
      process.stdout.write(`topic ${topic}\n${what}\n${JSON.stringify(a, null, 2)}\n`);
      for (const d of o.device as string[]) {
        const r = inRollout(d, [], a.id, a.rollout);
        process.stdout.write(`${d}: ${r.included ? 'takes part' : 'waits'} (${r.why})\n`);
      }
      return;
    }
    const broker = str('broker') ?? (str('out') ? undefined : fail('--broker is required (or use --dry-run / --out)'));
    if (!broker) {
      process.stdout.write(`wrote ${str('out')}: ${what}\n`);
      return;
    }
    await publishOnce(broker, topic, json, { retain: true, protocolVersion });
    process.stdout.write(`promoted ${what} on ${topic}\n`);
    // Devices remember an id they reverted (PREVIOUSLY_REVERTED), but not one that failed before its reboot.
    process.stderr.write('note: devices whose attempt failed before the reboot will try this update again (reverted ones will not); check `ota-fleet watch --announcement ID` first\n');
  });

program
  .command('command [device] [command]')
  .description(`send a signed command (${COMMANDS.join(', ')}) to one device, or to every device of --group (each gets its own signed command)`)
  .option('-k, --key <file>', 'signing key', collect, [] as string[])
  .option('-b, --broker <url>', 'broker URL')
  .option('--mqtt-version <n>', '5 or 4 (3.1.1)', '5')
  .option('--prefix <prefix>', 'topic prefix', 'ota/v1')
  .option('--group <g>', 'every device of this group in --inventory (repeat for several groups)', collect, [] as string[])
  .option('--inventory <file>', 'with --group: the device list, one "<device-id> [group ...]" per line')
  .option('--update <id>', 'cancel: only this update')
  .option('--expires-in <dur>', 'validity', '1h')
  .option('--out <file>', 'write the envelope (a group: one JSON line per device) here instead of publishing')
  .action(async (a1: string | undefined, a2: string | undefined, o: { key: string[]; broker?: string; mqttVersion: string; prefix: string; group: string[]; inventory?: string; update?: string; expiresIn: string; out?: string }) => {
    const group = o.group.length > 0;
    let devices: string[];
    let command: string | undefined;
    if (group) {
      if (a2 !== undefined) fail('give either a device or --group, not both');
      command = a1;
      if (!o.inventory) fail('--group needs --inventory FILE: device groups are in each device\'s config, not in its retained state');
      try {
        devices = devicesInGroups(parseInventory(readFileSync(o.inventory, 'utf8'), o.inventory), o.group);
      } catch (e) {
        fail((e as Error).message);
      }
      if (devices.length === 0) fail(`no device of group ${o.group.join(', ')} in ${o.inventory}`);
    } else {
      if (a1 === undefined || a2 === undefined) fail('usage: ota-fleet command DEVICE COMMAND, or ota-fleet command COMMAND --group G --inventory FILE');
      devices = [a1];
      command = a2;
    }
    if (command === undefined || !(COMMANDS as readonly string[]).includes(command)) fail(`unknown command "${command ?? ''}" (known: ${COMMANDS.join(', ')})`);
    const signers = keys(o.key);
    const now = Date.now();
    const t = topics(o.prefix);
    const messages = devices.map((device) => {
      try {
        const signed = signCommand(
          {
            id: `${command}-${now}`,
            deviceId: device,
            sequence: now,
            issuedAt: new Date(now).toISOString(),
            expiresAt: new Date(now + parseDuration(o.expiresIn)).toISOString(),
            command: command as (typeof COMMANDS)[number],
            ...(o.update ? { updateId: o.update } : {}),
          },
          signers,
        );
        return { device, topic: t.commands(device), envelope: signed.envelope };
      } catch (e) {
        fail(`${device}: ${(e as Error).message}`);
      }
    });
    if (o.out) {
      const text = group ? messages.map((m) => JSON.stringify({ deviceId: m.device, topic: m.topic, envelope: m.envelope })).join('\n') : JSON.stringify(messages[0]?.envelope);
      writeFileSync(o.out, text + '\n');
      return;
    }
    if (!o.broker) fail('--broker is required (or --out FILE)');
    await publishMany(o.broker, messages.map((m) => ({ topic: m.topic, payload: JSON.stringify(m.envelope), retain: false })), { protocolVersion: mqttVersion(o.mqttVersion) });
    for (const m of messages) process.stdout.write(`sent ${command} to ${m.device}\n`);
  });

program
  .command('watch')
  .description('live view of the devices: state, online, progress, last result; a rollout summary with --announcement')
  .requiredOption('-b, --broker <url>', 'broker URL')
  .option('--mqtt-version <n>', '5 or 4 (3.1.1)', '5')
  .option('--prefix <prefix>', 'topic prefix', 'ota/v1')
  .option('--announcement <id>', 'summarise this rollout: committed, reverted, failed, rejected, pending')
  .option('--share <group>', 'take events through the MQTT 5 shared subscription $share/<group>/...: processes with the same group split the event stream')
  .option('--json', 'one JSON summary line per change instead of the terminal view')
  .option('--once', 'print the summary once, after the retained messages arrived, and exit')
  .option('--settle-ms <ms>', 'with --once: quiet time that ends the burst of retained messages', '500')
  .option('--rows <n>', 'device lines in the terminal view (default: fit the terminal)')
  .action(async (o: { broker: string; mqttVersion: string; prefix: string; announcement?: string; share?: string; json?: boolean; once?: boolean; settleMs: string; rows?: string }) => {
    // Loaded here, so the other commands start fast.
    const [{ FleetView }, { FleetWatch }, { renderDeviceTable, renderSummary }] = await Promise.all([import('../fleet/fleet-view.js'), import('../fleet/watch.js'), import('../fleet/render.js')]);
    const view = new FleetView(o.announcement);
    let dirty = true;
    let watch: FleetWatch;
    try {
      watch = await FleetWatch.start(view, { url: o.broker, prefix: o.prefix, protocolVersion: mqttVersion(o.mqttVersion), ...(o.share ? { share: o.share } : {}), announcements: true }, () => (dirty = true));
    } catch (e) {
      fail(`cannot watch ${o.broker}: ${(e as Error).message}`);
    }
    const summaryJson = () => JSON.stringify(view.summary());
    if (o.once) {
      await watch.settled(num('--settle-ms', o.settleMs, { min: 0, int: true }), 15_000);
      process.stdout.write(o.json ? `${summaryJson()}\n` : `${[...renderDeviceTable(view), '', ...renderSummary(view.summary())].join('\n')}\n`);
      await watch.close();
      return;
    }
    const tty = process.stdout.isTTY && !o.json;
    let last = '';
    const draw = () => {
      if (!dirty) return;
      dirty = false;
      if (tty) {
        const rows = o.rows ? num('--rows', o.rows, { min: 0, int: true }) : Math.max(1, (process.stdout.rows || 40) - 5);
        const lines = [`ota-fleet watch ${o.broker}${o.share ? ` (events shared as ${o.share})` : ''}  ${new Date().toISOString()}`, ...renderSummary(view.summary()), '', ...renderDeviceTable(view, { maxRows: rows, width: process.stdout.columns || 160 })];
        process.stdout.write(`\x1b[H\x1b[2J${lines.join('\n')}\n`);
        return;
      }
      // JSON or a pipe: a line only when the summary (not just its timestamp) changed.
      const s = view.summary();
      const key = JSON.stringify({ ...s, at: '' });
      if (key === last) return;
      last = key;
      process.stdout.write(o.json ? `${JSON.stringify(s)}\n` : `${s.at} ${renderSummary(s).join(' | ')}\n`);
    };
    // At most four redraws a second, however fast messages come.
    const timer = setInterval(draw, 250);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    clearInterval(timer);
    await watch.close();
  });

program
  .command('simulate')
  .description('N simulated devices in this process (the real agent, one SQLite store, simulated A/B slots and one MQTT connection each) take one signed rollout, with optional faults')
  .requiredOption('--devices <n>', 'number of simulated devices')
  .option('-b, --broker <url>', 'broker URL (default: start a throw-away mosquitto)')
  .option('--mqtt-version <n>', '5 or 4 (3.1.1)', '5')
  .option('--prefix <prefix>', 'topic prefix', 'ota/v1')
  .option('--compatible <c>', 'device class (default: sim-<random>)')
  .option('--version <v>', 'version announced', '2.0.0')
  .option('--initial-version <v>', 'version the devices run at first', '1.0.0')
  .option('--id <id>', 'announcement id (default: <compatible>-<version>)')
  .option('--percent <p>', 'rollout percentage', '100')
  .option('--fail-share <x>', 'share of the devices in the rollout whose health check fails (0..1)', '0')
  .option('--fallback-share <x>', 'share of the devices in the rollout whose new slot does not boot', '0')
  .option('--drop-share <x>', 'share of the devices in the rollout whose MQTT connection is cut mid-update', '0')
  .option('--dup-share <x>', 'share of all devices that get the announcement twice (QoS 1 redelivery)', '0')
  .option('--reorder-share <x>', 'share of all devices that get an older announcement after the newer one', '0')
  .option('--seed <s>', 'seed of the fault assignment', 'ota')
  .option('-k, --key <file>', 'signing key (default: a fresh one)')
  .option('--id-prefix <p>', 'device ids are <p><n> (default: sim-<random>-)')
  .option('--dir <dir>', 'work directory (default: a temporary one under /dev/shm or the temp dir, removed afterwards)')
  .option('--keep', 'keep the work directory')
  .option('--cleanup', 'clear the retained announcement, state and online messages afterwards')
  .option('--timeout <dur>', 'give up after this long', '5m')
  .option('--concurrency <n>', 'devices started at once', '25')
  .option('--json', 'print the final report as JSON')
  .option('--quiet', 'no progress lines')
  .action(async (o: Record<string, string | boolean | undefined>) => {
    const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
    const share = (k: string, flag: string) => num(flag, str(k), { min: 0, max: 1 });
    const keyFile = str('key');
    // The agent, SQLite and the simulated backend are loaded only for this command.
    const { renderSimulateReport, runSimulation } = await import('../fleet/simulate.js');
    const report = await runSimulation({
      devices: num('--devices', str('devices'), { min: 1, int: true }),
      ...(str('broker') ? { brokerUrl: str('broker') } : {}),
      protocolVersion: mqttVersion(str('mqttVersion') as string),
      prefix: str('prefix') as string,
      ...(str('compatible') ? { compatible: str('compatible') } : {}),
      version: str('version') as string,
      initialVersion: str('initialVersion') as string,
      ...(str('id') ? { announcementId: str('id') } : {}),
      percent: num('--percent', str('percent'), { min: 0, max: 100 }),
      failShare: share('failShare', '--fail-share'),
      fallbackShare: share('fallbackShare', '--fallback-share'),
      dropShare: share('dropShare', '--drop-share'),
      dupShare: share('dupShare', '--dup-share'),
      reorderShare: share('reorderShare', '--reorder-share'),
      seed: str('seed') as string,
      ...(keyFile ? { keyPem: readFileSync(keyFile, 'utf8') } : {}),
      ...(str('idPrefix') ? { idPrefix: str('idPrefix') } : {}),
      ...(str('dir') ? { dir: str('dir') } : {}),
      keep: o.keep === true,
      cleanup: o.cleanup === true,
      timeoutMs: parseDuration(str('timeout') as string),
      concurrency: num('--concurrency', str('concurrency'), { min: 1, int: true }),
      ...(o.quiet ? {} : { onProgress: (line: string) => process.stderr.write(`${line}\n`) }),
    });
    process.stdout.write(o.json ? `${JSON.stringify(report)}\n` : `${renderSimulateReport(report).join('\n')}\n`);
    process.exitCode = report.ok ? 0 : 1;
  });

program.parseAsync(process.argv).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
