/**
 * Saved update plans live in PostgreSQL (run_plans), sealed with the credentials keyring, so that any replica can
 * apply a plan another one saved and nothing of a plan touches DATA_DIR. The CLI reads and writes plans as files:
 * each operation gets a private temporary folder (mode 700) under the OS temp dir for the duration of its call only.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, encryptJson, type Keyring } from "../../db/crypto";
import { runPlans } from "../../db/schema";
import { planContext } from "../core/sealed-contexts";

export class RunPlanNotFoundError extends Error {
  override readonly name = "RunPlanNotFoundError";
  constructor(readonly planId: string) {
    super(`the saved plan ${planId} was not found for this tenant`);
  }
}

export interface RunPlanStore {
  /** Runs `save` with a temporary file path, then seals the plan the CLI wrote there into run_plans. */
  savePlan<T>(plan: { id: string; organizationId: number; previewRunId: string }, save: (path: string) => Promise<T>): Promise<T>;
  /** Writes the saved plan to a temporary file for the duration of `use`. RunPlanNotFoundError when absent. */
  withPlanFile<T>(plan: { id: string; organizationId: number }, use: (path: string) => Promise<T>): Promise<T>;
}

async function withTemporaryFile<T>(use: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "mxdr-plan-"));
  try {
    return await use(join(dir, "plan.json"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function createRunPlanStore(db: DrizzleDatabase, keyring: Keyring): RunPlanStore {
  return {
    savePlan: (plan, save) =>
      withTemporaryFile(async (path) => {
        const result = await save(path);
        const sealed = encryptJson(JSON.parse(await readFile(path, "utf8")), planContext(plan.organizationId, plan.id), keyring);
        await db.insert(runPlans).values({
          id: plan.id,
          organizationId: plan.organizationId,
          previewRunId: plan.previewRunId,
          planSealed: sealed.envelope,
          keyId: sealed.keyId,
        });
        return result;
      }),
    async withPlanFile(plan, use) {
      const [row] = await db
        .select()
        .from(runPlans)
        .where(and(eq(runPlans.id, plan.id), eq(runPlans.organizationId, plan.organizationId)));
      if (!row) throw new RunPlanNotFoundError(plan.id);
      const content = decryptJson<unknown>(row.planSealed, planContext(plan.organizationId, plan.id), keyring);
      return withTemporaryFile(async (path) => {
        await writeFile(path, JSON.stringify(content), { mode: 0o600 });
        return use(path);
      });
    },
  };
}
