/**
 * With organization accounts, a tenant has many stacks: what the tenant's own onboarding reads about "its stack" (the
 * applied outputs its rollout follows, the latest `up` its validation shows) is its home stack's, never an
 * organization account's run that finished later.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { organizations, runs } from "../../db/schema";
import { appliedStackOutputs } from "../../services/core/applied-outputs";
import { realPostgres } from "../harness/databases";

let database: Database;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
});

afterAll(async () => {
  await cleanup?.();
});

describe("the tenant's home stack among its accounts' stacks", () => {
  it("gives the home stack's applied outputs, not those of an organization account's later up", async () => {
    const [org] = await database.db.insert(organizations).values({ slug: "scope-co", name: "Scope", awsAccountId: "210987654321" }).returning();
    const finished = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000);
    await database.db.insert(runs).values([
      {
        organizationId: org!.id,
        stackName: "tenant-scope-co",
        kind: "up",
        status: "succeeded",
        actor: "test",
        finishedAt: finished(10),
        outputs: { associationId: "home-association" },
      },
      {
        organizationId: org!.id,
        stackName: "tenant-scope-co--310987654321",
        awsAccountId: "310987654321",
        kind: "up",
        status: "succeeded",
        actor: "system:organization",
        finishedAt: finished(1),
        outputs: { associationId: "member-association" },
      },
    ]);
    expect(await appliedStackOutputs(database.db, org!.id)).toEqual({ associationId: "home-association" });
  });
});
