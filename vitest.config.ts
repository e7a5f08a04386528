import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          globalSetup: ["test/harness/global-setup.ts"],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // These tests drive real Pulumi CLIs, moto and PostgreSQL; on a 2-core machine, one file at a time.
          fileParallelism: false,
          pool: "forks",
        },
      },
    ],
  },
});
