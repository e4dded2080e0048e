// The fault-injection spec (src/agent/failpoints.ts): a malformed spec is refused with the reason, a
// backend wrapper fails or skips exactly the named calls and passes everything else through.
import { describe, expect, it } from 'vitest';
import { FailpointSpecError, parseFailpoints } from '../../src/agent/failpoints.js';

describe('OTA_AGENT_FAILPOINTS', () => {
  it('parses backend and effect points', () => {
    expect([...parseFailpoints('backend.markGood=throw, backend.revert=skip,effect.rolling-back=crash,effect.accepted=hang,backend.install=crash-after')]).toEqual([
      ['backend.markGood', 'throw'],
      ['backend.revert', 'skip'],
      ['effect.rolling-back', 'crash'],
      ['effect.accepted', 'hang'],
      ['backend.install', 'crash-after'],
    ]);
    expect(parseFailpoints(undefined).size).toBe(0);
    expect(parseFailpoints('').size).toBe(0);
  });

  it.each([
    ['backend.markGood', 'is not <backend.method|effect.state>'],
    ['backend.fly=throw', 'no backend call "fly"'],
    ['effect.sleeping=throw', 'no state "sleeping"'],
    ['backend.install=skip', 'returns a value and cannot be skipped'],
    ['backend.reboot=crash', 'is for effects'],
    ['effect.verifying=skip', 'is for backend calls'],
    ['effect.installing=crash-after', 'is for backend calls'],
    ['backend.markGood=explode', 'is not <backend.method|effect.state>'],
  ])('refuses %s', (spec, reason) => {
    expect(() => parseFailpoints(spec)).toThrow(FailpointSpecError);
    expect(() => parseFailpoints(spec)).toThrow(reason);
  });
});
