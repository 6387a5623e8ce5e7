/** Test support (not used by the app): in-memory coordinators a test file starts, each closed after its test. */
import { afterEach } from 'vitest';
import { startCoordinator } from '../coordinator/testing.ts';

export type StartedCoordinator = Awaited<ReturnType<typeof startCoordinator>>;

/**
 * `startCoordinator` for one test file: every coordinator it started is closed after each test.
 * Call it at the file's top level (it registers the `afterEach`).
 */
export function coordinatorsClosedAfterEach(): (options?: Parameters<typeof startCoordinator>[0]) => Promise<StartedCoordinator> {
  const started: StartedCoordinator[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((c) => c.close()));
  });
  return async (options = {}) => {
    const c = await startCoordinator(options);
    started.push(c);
    return c;
  };
}
