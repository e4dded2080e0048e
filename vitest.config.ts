import { configDefaults, defineConfig } from 'vitest/config';

// Integration tests start real daemons (mosquitto, dbus-daemon, ...); give them room and run files
// two at a time to fit the 2-core machines.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The reliability harness has its own command (npm run test:faults, vitest.faults.config.ts).
    exclude: [...configDefaults.exclude, 'tests/faults/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
