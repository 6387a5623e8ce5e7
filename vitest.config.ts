import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,worker,web,modelhost,coordinator,requester,scripts}/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
  },
});
