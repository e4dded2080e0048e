import { defineConfig } from 'vitest/config';

// npm run test:faults: the reliability harness (tests/faults, docs/reliability.md). Long tests that
// kill agents, daemons and brokers on purpose; two files at a time on the 2-core machines.
export default defineConfig({
  test: {
    include: ['tests/faults/**/*.test.ts'],
    testTimeout: 30 * 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
