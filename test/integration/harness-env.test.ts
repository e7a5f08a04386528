import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

// Pins that the vitest global setup's process.env reaches the forked test workers (and their child processes).
describe("test harness environment", () => {
  it("workers see the moto endpoint and the offline Pulumi settings", async () => {
    expect(process.env.AWS_ENDPOINT_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(process.env.AWS_REGION).toBe("us-east-1");
    expect(process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION).toBe("true");
    expect(process.env.STANDIN_AWS_STATE_DIR).toBeTruthy();
    const response = await fetch(new URL("/moto-api/", process.env.AWS_ENDPOINT_URL));
    expect(response.ok).toBe(true);
  });

  it("runs on Node.js >= 22.12, and so does the `node` child processes find on PATH (the Pulumi language host, the service)", () => {
    const atLeast = (version: string) => {
      const [major, minor] = version.replace(/^v/, "").split(".").map(Number) as [number, number];
      return major > 22 || (major === 22 && minor >= 12);
    };
    expect(process.versions.node, process.execPath).toSatisfy(atLeast);
    const child = execFileSync("node", ["-p", "process.versions.node"], { encoding: "utf8" }).trim();
    expect(child).toSatisfy(atLeast);
  });

  it("has the embedded PostgreSQL server's URL (scripts/postgres.sh)", async () => {
    expect(process.env.TEST_DATABASE_URL).toMatch(/^postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/\w+$/);
    const { default: postgres } = await import("postgres");
    const sql = postgres(process.env.TEST_DATABASE_URL!, { max: 1 });
    try {
      const [row] = await sql<{ version: string }[]>`select version()`;
      expect(row!.version).toMatch(/^PostgreSQL \d+/);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it("child processes find the stand-in provider on PATH", () => {
    const found = execFileSync("sh", ["-c", "command -v pulumi-resource-aws"], { encoding: "utf8" }).trim();
    expect(found).toMatch(/test\/harness\/bin\/pulumi-resource-aws$/);
  });
});
