// The agent's JSON-lines logger (src/util/log.ts): pino's line format, redaction that leaves the
// caller's objects alone, and lines that never throw.
import { describe, expect, it } from 'vitest';
import { createLogger, redact, silentLogger } from '../../src/util/log.js';

function capture(level = 'info') {
  const lines: string[] = [];
  const log = createLogger(level, 'test', { write: (l: string) => lines.push(l) });
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, lines, parsed };
}

describe('createLogger', () => {
  it("writes pino's line format: numeric level, ISO time, pid, name, bindings, fields, msg", () => {
    const { log, lines, parsed } = capture();
    log.child({ updateId: 'u1' }).warn({ state: 'installing' }, 'slow');
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith('}\n')).toBe(true);
    const [e] = parsed();
    expect(e).toEqual({ level: 40, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), pid: process.pid, name: 'test', updateId: 'u1', state: 'installing', msg: 'slow' });
    expect(Object.keys(e ?? {})).toEqual(['level', 'time', 'pid', 'name', 'updateId', 'state', 'msg']);
  });

  it('filters by level; the level can be read and changed; a child keeps the level it was made with', () => {
    const { log, parsed } = capture('warn');
    log.info('dropped');
    log.error('kept');
    expect(log.level).toBe('warn');
    expect(log.isLevelEnabled('info')).toBe(false);
    const child = log.child({ c: 1 });
    log.level = 'debug';
    log.debug('now kept');
    child.info('child still at warn');
    expect(parsed().map((e) => e.msg)).toEqual(['kept', 'now kept']);
    expect(() => (log.level = 'loud')).toThrow(/unknown log level "loud"/);
  });

  it('redacts secrets by path without touching the object that was logged', () => {
    const { log, lines } = capture();
    const fields = { mqtt: { url: 'mqtts://b', password: 'hunter2' }, password: 'pw', headers: { authorization: 'Bearer abc' }, key: 'k', signer: { privateKeyPem: 'PEM' } };
    const before = JSON.stringify(fields);
    log.info(fields, 'connecting');
    expect(JSON.stringify(fields)).toBe(before);
    const e = JSON.parse(lines[0] ?? '{}') as typeof fields;
    expect(e.mqtt).toEqual({ url: 'mqtts://b', password: '[redacted]' });
    expect(e.password).toBe('[redacted]');
    expect(e.headers.authorization).toBe('[redacted]');
    expect(e.key).toBe('[redacted]');
    expect(e.signer.privateKeyPem).toBe('[redacted]');
    expect(redact({ config: { mqtt: { password: 'x' } } })).toEqual({ config: { mqtt: { password: '[redacted]' } } });
  });

  it('serializes errors (also as the first argument), bigint, and circular objects without throwing', () => {
    const { log, parsed } = capture();
    const err = Object.assign(new Error('boom'), { code: 'EBOOM' });
    log.error({ err }, 'failed');
    log.error(err);
    const loop: Record<string, unknown> = { n: 1n };
    loop.self = loop;
    log.info({ loop, shared: [err, err] }, 'odd values');
    const [a, b, c] = parsed();
    expect(a?.err).toMatchObject({ type: 'Error', message: 'boom', code: 'EBOOM', stack: expect.stringContaining('boom') });
    expect(b).toMatchObject({ msg: 'boom', err: { message: 'boom' } });
    expect(c?.loop).toEqual({ n: '1', self: '[Circular]' });
    // The same object twice side by side is not a cycle.
    expect((c?.shared as unknown[]).map((x) => (x as { message: string }).message)).toEqual(['boom', 'boom']);
  });

  it('a destination that throws does not stop the caller; the silent logger writes nothing', () => {
    const log = createLogger('info', 'x', { write: () => { throw new Error('EPIPE'); } });
    expect(() => log.info('lost')).not.toThrow();
    const silent = silentLogger();
    expect(silent.isLevelEnabled('fatal')).toBe(false);
    expect(() => silent.fatal('nothing')).not.toThrow();
  });
});
