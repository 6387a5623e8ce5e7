import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,worker,web,modelhost,catalog,coordinator,requester,scripts}/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
  },
});
