/** Vitest hooks shared by the end-to-end files. */
import { beforeAll, beforeEach } from "vitest";

/**
 * Runs `setup` before the file's (or describe block's) tests; if it throws (chromium, PostgreSQL or moto missing, ...),
 * every test fails with its error: nothing is skipped.
 */
export function setupOrFailEveryTest(setup: () => Promise<void>): void {
  let failure: unknown;
  beforeAll(async () => {
    try {
      await setup();
    } catch (error) {
      failure = error;
    }
  });
  beforeEach(() => {
    if (failure) throw failure;
  });
}
