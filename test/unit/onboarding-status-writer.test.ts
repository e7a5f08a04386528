/**
 * The onboarding status has one writer (services/onboarding/onboarding-status-store.ts): no other production module
 * sets organizations.onboarding_status in an update or an insert.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../harness/moto";

const PRODUCTION = ["api", "automation", "db", "lib", "platform", "programs", "services"];
const WRITER = "services/onboarding/onboarding-status-store.ts";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

/** `.set({ ... onboardingStatus ... })` or `.values({ ... onboardingStatus ... })` of a drizzle statement. */
const WRITES_STATUS = /\.(set|values)\(\{[^)]*\bonboardingStatus\b/s;

describe("the onboarding status", () => {
  it("is written by the onboarding status store alone", () => {
    const files = PRODUCTION.flatMap((folder) => sources(join(REPO_ROOT, folder))).map((file) => relative(REPO_ROOT, file));
    const writers = files.filter((file) => WRITES_STATUS.test(readFileSync(join(REPO_ROOT, file), "utf8")));
    expect(files.length).toBeGreaterThan(100);
    expect(writers).toEqual([WRITER]);
  });
});
