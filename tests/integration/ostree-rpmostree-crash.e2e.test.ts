// kill -9 of the agent while rpm-ostree pulls: the transaction goes on in rpm-ostree (the
// STAND-IN, tests/helpers/rpmostree-standin.py); the restarted agent finds it through
// Sysroot.ActiveTransactionPath, re-attaches (Start answers false: already started), follows it
// to Finished and completes the update. The remote holds every HTTP answer until the test lets
// go, so the pull is in flight for certain when the agent dies — no timing involved.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from '../helpers/mosquitto.js';
import { SimLab } from '../helpers/sim-lab.js';
import { OstreeDevice } from '../helpers/ostree-testbed.js';

let broker: Mosquitto;
let lab: SimLab;
let d: OstreeDevice;

beforeAll(async () => {
  broker = await Mosquitto.start();
  lab = await SimLab.create(broker.url, 5);
  d = await OstreeDevice.create(lab, { rpmOstree: true });
});
afterAll(async () => {
  await d?.close();
  await lab?.close();
  await broker?.stop();
});

const standinLog = () => d.rpmOstree?.log ?? [];

describe('rpm-ostree driver: the agent dies during a transaction', () => {
  it('the restarted agent re-attaches to the running pull and the update is committed', async () => {
    const commit = await d.testbed.commit('1.1.0');
    const release = d.testbed.holdRemote();
    const held = d.testbed.requests.length;
    const a = await d.announce(commit, '1.1.0');
    await lab.watcher.waitFor(() => standinLog().some((l) => l.includes('Start -> True')) && d.testbed.requests.length > held, 30_000, 'the pull to reach the remote');
    await d.agent.crash();
    const logsBefore = d.logs.length;
    d.agent.start();
    await lab.watcher.waitFor(() => standinLog().some((l) => l.includes('Start -> False')), 30_000, 'the restarted agent to join the transaction');
    // Still one transaction: the second client joined the first one instead of starting another.
    expect(standinLog().filter((l) => /transaction UpdateDeployment .* created/.test(l))).toHaveLength(1);
    release();
    const r = await lab.watcher.waitForResult(d.id, a.id, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\nagent:\n${d.logs.slice(-30).join('\n')}\nstand-in:\n${standinLog().slice(-30).join('\n')}`);
    });
    expect(r.result, r.message).toBe('committed');
    expect(d.testbed.bootedChecksum()).toBe(commit);
    const reattached = d.logs
      .slice(logsBefore)
      .map((l) => {
        try {
          return JSON.parse(l) as { msg?: string; method?: string; success?: boolean; startedByUs?: boolean };
        } catch {
          return {};
        }
      })
      .find((l) => l.msg?.startsWith('re-attached'));
    expect(reattached).toMatchObject({ method: 'UpdateDeployment', success: true, startedByUs: false });
    const steps = lab.watcher.eventsOf(d.id).filter((e) => e.updateId === a.id).map((e) => e.to);
    expect(steps).toEqual(['accepted', 'downloading', 'installing', 'rebooting', 'verifying', 'committing', 'committed']);
  });
});
