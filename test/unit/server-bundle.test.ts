/**
 * The service's bundle (scripts/build-server.mjs, what `npm start` and the e2e tests run): what it loads at start-up.
 * The Pulumi SDKs and the AWS SDK clients must stay behind `await import()` (their own chunks, or packages loaded on
 * first use), or the idle service grows by tens of MiB each (issue 12's memory budget).
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, expect, it } from "vitest";

const REPO_ROOT = join(import.meta.dirname, "..", "..");
const BUILD = join(REPO_ROOT, ".build");

/** Static `import ... from "x"` / `import "x"` specifiers of a bundle file (not dynamic `import("x")`). */
function staticImports(code: string): string[] {
  return [...code.matchAll(/^\s*(?:import|export)\s[^;]*?from\s*"([^"]+)"|^\s*import\s*"([^"]+)"/gms)].map((match) => (match[1] ?? match[2])!);
}

/** Every package the entry loads before main() runs: its static imports and those of the chunks it imports statically. */
async function startUpPackages(entry: string): Promise<Set<string>> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const specifier of staticImports(await readFile(join(BUILD, file), "utf8"))) {
      if (specifier.startsWith("./")) queue.push(specifier.slice(2));
      else packages.add(specifier);
    }
  }
  return packages;
}

beforeAll(async () => {
  await promisify(execFile)(process.execPath, [join(REPO_ROOT, "scripts", "build-server.mjs")], { cwd: REPO_ROOT });
});

it("loads no Pulumi SDK and no AWS SDK client at start-up", async () => {
  const packages = [...(await startUpPackages("server.js"))];
  expect(packages).toContain("hono");
  expect(packages.filter((name) => name.startsWith("@pulumi/") || name.startsWith("@aws-sdk/"))).toEqual([]);
});

it("keeps the tenant program (@pulumi/aws) and the Automation API for the first run", async () => {
  const server = await readFile(join(BUILD, "server.js"), "utf8");
  const lazy = [...server.matchAll(/import\(\s*"([^"]+)"\s*\)/g)].map((match) => match[1]!);
  expect(lazy).toContain("@pulumi/pulumi/automation/index.js");
  const programChunk = lazy.find((specifier) => /^\.\/program-[\w-]+\.js$/.test(specifier));
  expect(programChunk).toBeDefined();
  expect(await startUpPackages(programChunk!.slice(2))).toContain("@pulumi/aws");
});
