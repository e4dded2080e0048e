import { defineConfig } from 'vitest/config';

// The emulated arm64 device (cross-build/device/README.md): NOT part of the main suite (its include
// is tests/**/*.test.ts; these files end in .device.ts). Run through cross-build/device/run-scenarios.sh,
// which builds the image first. One file, one worker: a VM already uses both cores.
export default defineConfig({
  test: {
    include: ['tests/device/**/*.device.ts'],
    testTimeout: 900_000,
    hookTimeout: 600_000,
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
