// The rpm-ostree STAND-IN and the driver's own introspection data against the real interface.
//
// EXPECTED below is written out by hand from coreos/rpm-ostree
// src/daemon/org.projectatomic.rpmostree1.xml at tag v2026.2
// (commit d5ef5f0cb5ace53f40a8d92933cc87e69ad8c7f4): the subset the driver uses and the stand-in
// serves — every member with the upstream name, argument types and directions. The test
// introspects the running stand-in (Sysroot and OS objects on the bus, and a transaction's "/"
// object over its peer-to-peer socket) and requires exactly these members with these signatures,
// and checks that the XML the driver hands to dbus-next (src/ostree/rpmostree/interface.ts) uses
// nothing else.
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import dbus from 'dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RPMOSTREE_INTROSPECTION } from '../../src/ostree/rpmostree/interface.js';
import { OstreeTestbed } from '../helpers/ostree-testbed.js';
import { RpmOstreeStandin } from '../helpers/rpmostree-standin.js';

/** member -> signature: methods "in -> out", properties "type access", signals "(args)". */
type Members = Record<string, string>;
const EXPECTED: Record<string, Members> = {
  'org.projectatomic.rpmostree1.Sysroot': {
    'property Booted': 'o read',
    'property Path': 's read',
    'property ActiveTransaction': '(sss) read',
    'property ActiveTransactionPath': 's read',
    'property AutomaticUpdatePolicy': 's read',
    'property Deployments': 'aa{sv} read',
    'method RegisterClient': 'a{sv} options -> ',
    'method UnregisterClient': 'a{sv} options -> ',
    'method Reload': ' -> ',
    'method GetOS': 's name -> o object_path',
  },
  'org.projectatomic.rpmostree1.OS': {
    'property BootedDeployment': 'a{sv} read',
    'property DefaultDeployment': 'a{sv} read',
    'property RollbackDeployment': 'a{sv} read',
    'property CachedUpdate': 'a{sv} read',
    'property HasCachedUpdateRpmDiff': 'b read',
    'property Name': 's read',
    'method Rollback': 'a{sv} options -> s transaction_address',
    'method Cleanup': 'as elements -> s transaction_address',
    'method UpdateDeployment': 'a{sv} modifiers, a{sv} options -> s transaction_address',
    'method FinalizeDeployment': 'a{sv} options -> s transaction_address',
  },
  'org.projectatomic.rpmostree1.Transaction': {
    'property Title': 's read',
    'property InitiatingClientDescription': 's read',
    'method Cancel': ' -> ',
    'method Start': ' -> b started',
    'signal Finished': 'b success, s error_message',
    'signal Message': 's text',
    'signal TaskBegin': 's text',
    'signal TaskEnd': 's text',
    'signal PercentProgress': 's text, u percentage',
    'signal DownloadProgress': '(tt) time, (uu) outstanding, (uuu) metadata, (uuut) delta, (uu) content, (tt) transfer',
    'signal ProgressEnd': '',
  },
};

// dbus-next's own XML parser (xml2js), so no second XML library is needed.
const xml2js = createRequire(createRequire(import.meta.url).resolve('dbus-next'))('xml2js') as { parseStringPromise(xml: string): Promise<XmlNode> };
interface XmlArg { $: { type: string; name?: string; direction?: string } }
interface XmlIface {
  $: { name: string };
  method?: Array<{ $: { name: string }; arg?: XmlArg[] }>;
  property?: Array<{ $: { name: string; type: string; access: string } }>;
  signal?: Array<{ $: { name: string }; arg?: XmlArg[] }>;
}
interface XmlNode { node: { interface?: XmlIface[] } }

const args = (list: XmlArg[] = []) => list.map((a) => `${a.$.type}${a.$.name ? ` ${a.$.name}` : ''}`).join(', ');

/** The members of one interface in an introspection document, in EXPECTED's notation. */
async function members(xml: string, iface: string): Promise<Members> {
  const doc = await xml2js.parseStringPromise(xml);
  const i = doc.node.interface?.find((x) => x.$.name === iface);
  if (!i) throw new Error(`${iface} is not in the introspection data:\n${xml}`);
  const out: Members = {};
  for (const p of i.property ?? []) out[`property ${p.$.name}`] = `${p.$.type} ${p.$.access}`;
  for (const m of i.method ?? []) {
    const dir = (d: string) => (m.arg ?? []).filter((a) => (a.$.direction ?? 'in') === d);
    out[`method ${m.$.name}`] = `${args(dir('in'))} -> ${args(dir('out'))}`;
  }
  for (const s of i.signal ?? []) out[`signal ${s.$.name}`] = args(s.arg);
  return out;
}

interface RawConnection extends EventEmitter {
  message(msg: dbus.Message): void;
  end(): void;
}
const createConnection = createRequire(import.meta.url)('dbus-next/lib/connection.js') as (o: { busAddress: string }) => RawConnection;

/** Introspect on "/" of a peer-to-peer transaction socket (no bus: no Hello, no destination). */
function introspectPeer(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ busAddress: address });
    c.on('error', reject);
    c.on('message', (m: dbus.Message) => {
      if (Number(m.replySerial) !== 1) return;
      c.end();
      if (m.type === dbus.MessageType.METHOD_RETURN) resolve(String(m.body[0]));
      else reject(new Error(`Introspect failed: ${m.errorName ?? ''} ${String(m.body[0])}`));
    });
    c.message(new dbus.Message({ serial: 1, path: '/', interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' }));
  });
}

let tb: OstreeTestbed;
let standin: RpmOstreeStandin;
let bus: dbus.MessageBus;

beforeAll(async () => {
  tb = await OstreeTestbed.create();
  standin = new RpmOstreeStandin(tb);
  await standin.start();
  bus = dbus.sessionBus({ busAddress: tb.busAddress });
  bus.on('error', () => undefined);
});
afterAll(async () => {
  bus?.disconnect();
  await standin?.stop();
  await tb?.close();
});

async function introspect(path: string): Promise<string> {
  const reply = await bus.call(new dbus.Message({ destination: 'org.projectatomic.rpmostree1', path, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' }));
  return String(reply?.body[0]);
}

describe('rpm-ostree stand-in: live introspection equals the upstream interface subset (v2026.2)', () => {
  it('Sysroot at /org/projectatomic/rpmostree1/Sysroot', async () => {
    expect(await members(await introspect('/org/projectatomic/rpmostree1/Sysroot'), 'org.projectatomic.rpmostree1.Sysroot')).toEqual(EXPECTED['org.projectatomic.rpmostree1.Sysroot']);
  });

  it('OS at the path GetOS returns for the stateroot', async () => {
    const reply = await bus.call(
      new dbus.Message({ destination: 'org.projectatomic.rpmostree1', path: '/org/projectatomic/rpmostree1/Sysroot', interface: 'org.projectatomic.rpmostree1.Sysroot', member: 'GetOS', signature: 's', body: [tb.osname] }),
    );
    const osPath = String(reply?.body[0]);
    expect(osPath).toBe('/org/projectatomic/rpmostree1/testos');
    expect(await members(await introspect(osPath), 'org.projectatomic.rpmostree1.OS')).toEqual(EXPECTED['org.projectatomic.rpmostree1.OS']);
  });

  it('Transaction at "/" of a transaction\'s peer-to-peer socket', async () => {
    // Cleanup with nothing to clean: a harmless transaction, just to get a transaction address.
    const reply = await bus.call(
      new dbus.Message({ destination: 'org.projectatomic.rpmostree1', path: '/org/projectatomic/rpmostree1/testos', interface: 'org.projectatomic.rpmostree1.OS', member: 'Cleanup', signature: 'as', body: [[]] }),
    );
    const address = String(reply?.body[0]);
    expect(address).toMatch(/^unix:path=.*\/rpm-ostree-transaction\.sock$/);
    expect(await members(await introspectPeer(address), 'org.projectatomic.rpmostree1.Transaction')).toEqual(EXPECTED['org.projectatomic.rpmostree1.Transaction']);
  });

  it("the driver's introspection data (src/ostree/rpmostree/interface.ts) uses only upstream members, with their signatures", async () => {
    for (const iface of ['org.projectatomic.rpmostree1.Sysroot', 'org.projectatomic.rpmostree1.OS']) {
      const driver = await members(RPMOSTREE_INTROSPECTION, iface);
      expect(Object.keys(driver).length).toBeGreaterThan(3);
      for (const [member, signature] of Object.entries(driver)) expect(`${iface} ${member}: ${signature}`).toBe(`${iface} ${member}: ${EXPECTED[iface]?.[member] ?? '(not in the upstream subset)'}`);
    }
  });
});
