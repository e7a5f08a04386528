/**
 * What runs at `npm ci`: the scarf install analytics (pulled in by swagger-ui-dist) are off, both by scarf's own
 * setting and by npm's `allowScripts` policy, and every package of the lockfile with an install script has a reviewed
 * entry there (a new one fails here until someone reads what it does).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../platform/config";

const read = (file: string) => JSON.parse(readFileSync(join(REPO_ROOT, file), "utf8"));

describe("install-time scripts", () => {
  it("switches off the scarf install analytics that swagger-ui-dist pulls in", () => {
    const manifest = read("package.json");
    expect(manifest.scarfSettings).toEqual({ enabled: false });
    expect(manifest.allowScripts["@scarf/scarf"]).toBe(false);
    const lock = read("package-lock.json");
    expect(lock.packages["node_modules/swagger-ui-dist"].dependencies).toHaveProperty("@scarf/scarf");
  });

  it("gives every package with an install script a reviewed allowScripts entry", () => {
    const { allowScripts } = read("package.json") as { allowScripts: Record<string, boolean> };
    const lock = read("package-lock.json") as { packages: Record<string, { hasInstallScript?: boolean }> };
    const withScripts = Object.entries(lock.packages)
      .filter(([, entry]) => entry.hasInstallScript)
      .map(([path]) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length));
    expect(withScripts.length).toBeGreaterThan(0);
    expect(withScripts.filter((name) => !(name in allowScripts))).toEqual([]);
  });
});
