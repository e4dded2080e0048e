// Which OSTree driver the backend picks: the decision (chooseDriver) for every probe outcome, the
// config's `driver` override and its validation, and that openOstreeBackend builds the chosen one
// and asks the bus only in "auto". The probe against a real dbus-daemon (owned, activatable, no
// bus) is in tests/integration/ostree-rpmostree-driver.test.ts.
import { staleDefault } from '../../src/ostree/status.js';
import { describe, expect, it } from 'vitest';
import { OstreeBackend } from '../../src/ostree/backend.js';
import { OstreeOptions } from '../../src/ostree/options.js';
import { RpmOstreeBackend } from '../../src/ostree/rpmostree/backend.js';
import { chooseDriver, openOstreeBackend, type RpmOstreeProbe } from '../../src/ostree/select.js';

const base = { type: 'ostree', osname: 'fedora-iot', allowUnsigned: true };
const quiet = { info: () => undefined, warn: () => undefined };

describe('chooseDriver', () => {
  it.each<[string, RpmOstreeProbe, 'ostree' | 'rpm-ostree', RegExp]>([
    ['owned', { owned: true, activatable: true }, 'rpm-ostree', /is on the bus/],
    ['activatable only', { owned: false, activatable: true }, 'rpm-ostree', /is activatable/],
    ['absent', { owned: false, activatable: false }, 'ostree', /neither on the bus nor activatable/],
    ['no bus', { error: 'connect ENOENT /run/dbus/system_bus_socket' }, 'ostree', /could not be asked.*ENOENT/],
  ])('auto, rpm-ostree %s -> %s', (_name, probe, driver, why) => {
    const c = chooseDriver('auto', probe);
    expect(c.driver).toBe(driver);
    expect(c.why).toMatch(why);
  });

  it('a forced driver wins over whatever the bus says', () => {
    expect(chooseDriver('ostree', { owned: true, activatable: true })).toEqual({ driver: 'ostree', why: 'driver "ostree" set in the config' });
    expect(chooseDriver('rpm-ostree', { owned: false, activatable: false }).driver).toBe('rpm-ostree');
    expect(chooseDriver('rpm-ostree', null).driver).toBe('rpm-ostree');
  });
});

describe('OstreeOptions.driver', () => {
  it('defaults to auto and accepts the three values; anything else is refused with its path', () => {
    expect(OstreeOptions.parse(base).driver).toBe('auto');
    for (const driver of ['auto', 'ostree', 'rpm-ostree'] as const) expect(OstreeOptions.parse({ ...base, driver }).driver).toBe(driver);
    const r = OstreeOptions.safeParse({ ...base, driver: 'bootc' });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['driver']);
    expect(OstreeOptions.safeParse({ ...base, busAddress: '' }).success).toBe(false);
  });
});

describe('openOstreeBackend', () => {
  const probeSays = (answer: RpmOstreeProbe) => {
    const asked: Array<string | undefined> = [];
    return { asked, probe: async (bus?: string) => (asked.push(bus), answer) };
  };

  it('auto: asks the configured bus and builds the rpm-ostree driver when the name is there', async () => {
    const p = probeSays({ owned: true, activatable: true });
    const b = await openOstreeBackend(OstreeOptions.parse({ ...base, busAddress: 'unix:path=/tmp/x.sock' }), quiet, p.probe);
    expect(b).toBeInstanceOf(RpmOstreeBackend);
    expect(b.driver).toBe('rpm-ostree');
    expect(p.asked).toEqual(['unix:path=/tmp/x.sock']);
  });

  it('auto: the ostree tool when rpm-ostree is absent; the choice and its reason are logged', async () => {
    const p = probeSays({ owned: false, activatable: false });
    const logged: object[] = [];
    const b = await openOstreeBackend(OstreeOptions.parse(base), { ...quiet, info: (o: object) => logged.push(o) }, p.probe);
    expect(b).toBeInstanceOf(OstreeBackend);
    expect(p.asked).toEqual([undefined]);
    expect(logged).toEqual([{ driver: 'ostree', why: 'org.projectatomic.rpmostree1 is neither on the bus nor activatable: using the ostree tool' }]);
  });

  it('forced: the bus is not asked at all', async () => {
    const p = probeSays({ owned: true, activatable: true });
    expect(await openOstreeBackend(OstreeOptions.parse({ ...base, driver: 'ostree' }), quiet, p.probe)).toBeInstanceOf(OstreeBackend);
    expect(await openOstreeBackend(OstreeOptions.parse({ ...base, driver: 'rpm-ostree' }), quiet, p.probe)).toBeInstanceOf(RpmOstreeBackend);
    expect(p.asked).toEqual([]);
  });
});

describe('staleDefault (both OSTree drivers, after an update ended)', () => {
  const d = (checksum: string, booted = false) => ({ checksum, booted });
  it('names the booted deployment when the announced commit is still the default but not running', () => {
    const booted = d('old', true);
    expect(staleDefault([d('new'), booted], 'new')).toBe(booted);
  });
  it('is null when the default is what runs, or the default is another commit, or the commit runs', () => {
    expect(staleDefault([d('old', true), d('new')], 'new')).toBeNull();
    expect(staleDefault([d('other'), d('old', true)], 'new')).toBeNull();
    expect(staleDefault([d('new'), d('new', true)], 'new')).toBeNull();
    expect(staleDefault([], 'new')).toBeNull();
  });
});
