import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const REPO_ROOT = join(import.meta.dirname, "..", "..");

it("@pulumi/pulumi loads without typescript and arborist, and closure serialization still loads and uses them", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", join(REPO_ROOT, "test/harness/closure-deps-process.ts")], {
    cwd: REPO_ROOT,
  });
  const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
  expect(result.afterImport).toEqual({ typescript: false, arborist: false });
  // serializeFunction parses the function with TypeScript; computeCodePaths walks the package tree with arborist.
  expect(result.afterSerialize.typescript).toBe(true);
  expect(result.closureText).toContain("factor");
  expect(result.afterCodePaths.arborist).toBe(true);
  expect(result.codePaths).toBeGreaterThan(0);
});
