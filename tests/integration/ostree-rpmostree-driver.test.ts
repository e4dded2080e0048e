// The rpm-ostree driver on its own (no agent, no broker) against the rpm-ostree STAND-IN
// (tests/helpers/rpmostree-standin.py) on a private dbus-daemon with a real ostree sysroot: driver
// selection by what is on the bus, a locked staged deployment that only FinalizeDeployment
// releases, the driver's refusal of a staged commit it did not ask for, and re-attaching to a
// transaction a previous agent process started. Needs root, ostree, python3-gi, dbus: a missing
// one fails the test (tests/helpers/ostree-testbed.ts).
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { EffectContext } from '../../src/core/backend.js';
import { OstreeOptions } from '../../src/ostree/options.js';
import { openOstreeBackend, probeRpmOstree } from '../../src/ostree/select.js';
import type { Announcement } from '../../src/schemas/announcement.js';
import { OstreeTestbed, requireBinary } from '../helpers/ostree-testbed.js';
import { RpmOstreeStandin } from '../helpers/rpmostree-standin.js';
import { SystemdStandin } from '../helpers/systemd-standin.js';
import { socketAccepts } from '../helpers/processes.js';

interface Rig {
  tb: OstreeTestbed;
  standin: RpmOstreeStandin;
  systemd: SystemdStandin;
  logs: Array<{ level: string; o: object; m: string }>;
}
const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.standin.stop();
    r.systemd.close();
    await r.tb.close();
  }
});

async function rig(fault?: 'stage-booted-commit'): Promise<Rig> {
  const tb = await OstreeTestbed.create();
  const standin = new RpmOstreeStandin(tb);
  standin.fault = fault;
  const systemd = await SystemdStandin.start(tb.busAddress);
  const r = { tb, standin, systemd, logs: [] as Rig['logs'] };
  rigs.push(r);
  await standin.start();
  return r;
}

function options(tb: OstreeTestbed) {
  return OstreeOptions.parse({
    type: 'ostree',
    osname: tb.osname,
    gpgKeyFile: tb.trustedKeyFile,
    bootIdFile: tb.bootIdFile,
    commandPrefix: [tb.enterScript],
    busAddress: tb.busAddress,
    reboot: { method: 'logind', busAddress: tb.busAddress },
  });
}

async function backend(r: Rig) {
  const log = {
    info: (o: object, m: string) => r.logs.push({ level: 'info', o, m }),
    warn: (o: object, m: string) => r.logs.push({ level: 'warn', o, m }),
  };
  return openOstreeBackend(options(r.tb), log);
}

function announcement(tb: OstreeTestbed, commit: string, version: string): Announcement {
  return {
    id: `u-${version}`,
    sequence: 1,
    issuedAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    compatible: 'c',
    channel: 'stable',
    version,
    backend: 'ostree',
    artifact: { remote: { name: 'updates', url: tb.remoteUrl }, ref: tb.ref, commit },
    rollout: { percent: 100 },
  } as unknown as Announcement;
}

function ctx(signal = new AbortController().signal): EffectContext & { seen: Array<[string, number]> } {
  const seen: Array<[string, number]> = [];
  return { signal, progress: (phase, pct) => seen.push([phase, pct]), seen };
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
    await sleep(25);
  }
}

/** The machine reboots: rpm-ostreed stops, shutdown finalises what may be finalised, the next boot. */
async function powerCycle(r: Rig, entry = 0) {
  await r.standin.stop();
  await r.tb.simulateBoot({ entry });
  await r.standin.start();
}

describe('OSTree driver selection (probe of a real dbus-daemon)', () => {
  it('finds rpm-ostree when its name is owned, and when it is only activatable; else the ostree tool', async () => {
    const r = await rig();
    expect(await probeRpmOstree(r.tb.busAddress)).toEqual({ owned: true, activatable: true });
    expect((await backend(r)).driver).toBe('rpm-ostree');
    await r.standin.stop();
    // The bus daemon sees the stand-in's socket close a moment after the process exited.
    let probe = await probeRpmOstree(r.tb.busAddress);
    for (let i = 0; i < 100 && 'owned' in probe && probe.owned; i++) probe = await probeRpmOstree(r.tb.busAddress);
    expect(probe).toEqual({ owned: false, activatable: false });
    expect((await backend(r)).driver).toBe('ostree');
    expect(r.logs.map((l) => (l.o as { why: string }).why)).toEqual([
      'org.projectatomic.rpmostree1 is on the bus',
      'org.projectatomic.rpmostree1 is neither on the bus nor activatable: using the ostree tool',
    ]);

    // A bus that can activate rpm-ostree (a D-Bus service file), with nobody owning the name yet.
    const dir = mkdtempSync(join(tmpdir(), 'ota-activatable-'));
    try {
      mkdirSync(join(dir, 'services'));
      writeFileSync(join(dir, 'services', 'org.projectatomic.rpmostree1.service'), '[D-BUS Service]\nName=org.projectatomic.rpmostree1\nExec=/bin/false\n');
      writeFileSync(
        join(dir, 'bus.conf'),
        `<busconfig><type>system</type><listen>unix:path=${dir}/bus.sock</listen><auth>EXTERNAL</auth><servicedir>${dir}/services</servicedir>
        <policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>`,
      );
      const daemon = spawn(requireBinary('dbus-daemon'), [`--config-file=${dir}/bus.conf`, '--nofork', '--nopidfile'], { stdio: 'ignore' });
      try {
        for (let i = 0; !(await socketAccepts(join(dir, 'bus.sock'))); i++) {
          if (i > 400) throw new Error('the second dbus-daemon did not listen');
          await sleep(25);
        }
        expect(await probeRpmOstree(`unix:path=${dir}/bus.sock`)).toEqual({ owned: false, activatable: true });
      } finally {
        daemon.kill('SIGTERM');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // No bus at all: the ostree tool, and the reason says why.
    const none = await probeRpmOstree(`unix:path=${join(r.tb.dir, 'no-such-bus.sock')}`);
    expect(none).toHaveProperty('error');
  });
});

describe('rpm-ostree driver against the stand-in', () => {
  it('stages a locked deployment that an unplanned reboot does not apply; FinalizeDeployment does, and reboots through logind', async () => {
    const r = await rig();
    const b = await backend(r);
    expect(b.driver).toBe('rpm-ostree');
    const factory = r.tb.bootedChecksum();
    const commit = await r.tb.commit('1.1.0');
    const a = announcement(r.tb, commit, '1.1.0');
    const c = ctx();
    await b.download(a, c);
    // PercentProgress from the transaction reached the agent's progress (capped below 100 until Finished).
    expect(c.seen.filter(([p, n]) => p === 'downloading' && n > 0 && n < 100).length).toBeGreaterThan(0);
    expect(c.seen.at(-1)).toEqual(['downloading', 100]);
    expect(await b.install(a, ctx())).toEqual({ newSlot: commit, oldSlot: factory });
    let slots = await b.slots();
    expect(slots.map((s) => [s.name, s.booted, s.bootStatus])).toEqual([
      [commit, false, 'staged (finalization locked)'],
      [factory, true, undefined],
    ]);
    // install is idempotent (a resumed agent calls it again): nothing new is staged.
    expect(await b.install(a, ctx())).toEqual({ newSlot: commit, oldSlot: factory });

    // A power cut now: ostree's finalize-staged honours the lock, the old deployment boots again.
    await powerCycle(r);
    expect(r.tb.bootedChecksum()).toBe(factory);
    expect((await b.bootInfo()).bootedSlot).toBe(factory);

    // Staged again, then the planned reboot: FinalizeDeployment unlocks and rpm-ostree reboots.
    await b.install(a, ctx());
    expect(await b.reboot('update')).toEqual({ kind: 'requested' });
    await until('the reboot request', () => r.systemd.calls.length === 1);
    expect(r.systemd.calls[0]?.via).toBe('logind');
    await powerCycle(r);
    expect(r.tb.bootedChecksum()).toBe(commit);
    expect(await b.bootInfo()).toMatchObject({ bootedSlot: commit, version: '1.1.0' });
    await b.markGood();
    slots = await b.slots();
    expect(slots.map((s) => [s.name, s.booted, s.bootStatus])).toEqual([
      [commit, true, undefined],
      [factory, false, 'rollback'],
    ]);
    expect(await b.rollbackTarget()).toEqual({ slot: factory, version: '1.0.0' });
    // The rollback command: Rollback makes the factory deployment the default; it boots next.
    await b.activateRollback();
    expect(r.tb.defaultChecksum()).toBe(factory);
  }, 180_000); // two power cycles and eight transactions: more than the default 60 s on a loaded machine

  it('refuses, and removes, a staged deployment whose checksum is not the announced commit', async () => {
    const r = await rig('stage-booted-commit');
    const b = await backend(r);
    const factory = r.tb.bootedChecksum();
    const commit = await r.tb.commit('1.1.0');
    const a = announcement(r.tb, commit, '1.1.0');
    await b.download(a, ctx());
    await expect(b.install(a, ctx())).rejects.toThrow(`refused: rpm-ostree staged ${factory} (staged), not the announced commit ${commit}; the staged deployment was removed`);
    expect((await b.slots()).map((s) => [s.name, s.booted])).toEqual([[factory, true]]);
    expect(r.standin.log.join('\n')).toContain('FAULT: staging the booted commit');
  });

  it('a wrongly signed commit: the transaction fails on the signature and the driver refuses naming GPG', async () => {
    const r = await rig();
    const b = await backend(r);
    const commit = await r.tb.commit('1.1.0', { signer: 'untrusted' });
    const a = announcement(r.tb, commit, '1.1.0');
    await expect(b.download(a, ctx())).rejects.toThrow(/^refused commit [0-9a-f]{64} of updates:testos\/stable: GPG verification failed: .*rpm-ostree UpdateDeployment failed: .*public key not found/);
    expect((await b.slots()).length).toBe(1);
  });

  it('re-attaches to the transaction a previous agent process started (Sysroot.ActiveTransactionPath)', async () => {
    const r = await rig();
    const commit = await r.tb.commit('1.1.0');
    const a = announcement(r.tb, commit, '1.1.0');
    const release = r.tb.holdRemote();
    // The first agent starts the download; the pull hangs on the held remote; the agent dies.
    const first = await backend(r);
    const dying = new AbortController();
    const p = first.download(a, ctx(dying.signal));
    const requestsBefore = r.tb.requests.length;
    await until('the pull to reach the remote', () => r.standin.log.some((l) => l.includes('Start -> True')) && r.tb.requests.length > requestsBefore);
    dying.abort();
    await expect(p).rejects.toThrow(/the agent is stopping/);
    // The second agent process: finds the running transaction, follows it to its end, then does its own.
    const second = await backend(r);
    const q = second.download(a, ctx());
    await until('the second client to join', () => r.standin.log.some((l) => l.includes('Start -> False')));
    release();
    await q;
    const reattached = r.logs.find((l) => l.m.startsWith('re-attached'));
    expect(reattached?.o).toMatchObject({ method: 'UpdateDeployment', success: true, startedByUs: false });
    expect(await second.install(a, ctx())).toMatchObject({ newSlot: commit });
  });
});
