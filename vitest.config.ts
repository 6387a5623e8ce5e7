import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,worker,web,modelhost,catalog,coordinator,requester,scripts,operator,testing}/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
  },
});
