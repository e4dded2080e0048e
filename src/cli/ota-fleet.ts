#!/usr/bin/env node
// ota-fleet: the fleet owner's tool. keygen makes a signing key; publish builds, signs and
// publishes an announcement (retained); command signs and sends a command to one device.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command as Cli } from 'commander';
import { loadPrivateKey } from '../crypto/dsse.js';
import { digestFile, generateKeyPair, signAnnouncement, signCommand } from '../fleet/sign.js';
import { publishOnce } from '../fleet/broker.js';
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

// Positional options: `--version` after `publish` is the announced version, before it the tool's own.
const program = new Cli('ota-fleet').enablePositionalOptions().version(AGENT_VERSION).description('fleet tools for ota-agent: keys, signed announcements and commands');

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
      if (!sha256 || size === undefined) fail('give --artifact FILE, or --sha256 and --size');
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
    await publishOnce(broker, topic, json, { retain: true, protocolVersion: Number(str('mqttVersion')) === 4 ? 4 : 5 });
    process.stdout.write(`published ${signed.announcement.id} ${version} seq ${signed.announcement.sequence} to ${topic}\n`);
  });

program
  .command('command <device> <command>')
  .description(`send a signed command (${COMMANDS.join(', ')}) to one device`)
  .option('-k, --key <file>', 'signing key', collect, [] as string[])
  .option('-b, --broker <url>', 'broker URL')
  .option('--mqtt-version <n>', '5 or 4 (3.1.1)', '5')
  .option('--prefix <prefix>', 'topic prefix', 'ota/v1')
  .option('--update <id>', 'cancel: only this update')
  .option('--expires-in <dur>', 'validity', '1h')
  .option('--out <file>', 'write the envelope here instead of publishing')
  .action(async (device: string, command: string, o: { key: string[]; broker?: string; mqttVersion: string; prefix: string; update?: string; expiresIn: string; out?: string }) => {
    if (!(COMMANDS as readonly string[]).includes(command)) fail(`unknown command "${command}" (known: ${COMMANDS.join(', ')})`);
    const now = Date.now();
    let signed;
    try {
      signed = signCommand(
        {
          id: `${command}-${now}`,
          deviceId: device,
          sequence: now,
          issuedAt: new Date(now).toISOString(),
          expiresAt: new Date(now + parseDuration(o.expiresIn)).toISOString(),
          command: command as (typeof COMMANDS)[number],
          ...(o.update ? { updateId: o.update } : {}),
        },
        keys(o.key),
      );
    } catch (e) {
      fail((e as Error).message);
    }
    const json = JSON.stringify(signed.envelope);
    if (o.out) {
      writeFileSync(o.out, json + '\n');
      return;
    }
    if (!o.broker) fail('--broker is required (or --out FILE)');
    await publishOnce(o.broker, topics(o.prefix).commands(device), json, { retain: false, protocolVersion: Number(o.mqttVersion) === 4 ? 4 : 5 });
    process.stdout.write(`sent ${command} to ${device}\n`);
  });

program.parseAsync(process.argv).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
