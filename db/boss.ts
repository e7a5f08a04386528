/** The service's job engine: one pg-boss instance on the service's PostgreSQL, shared by the stack-run and discovery queues. */
import { PgBoss } from "pg-boss";
import { BOSS_POOL_MAX } from "./connection-budget";

export async function startBoss(connectionString: string, log: (message: string) => void = console.error): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString, max: BOSS_POOL_MAX });
  boss.on("error", (error: Error) => log(`queue: ${error.message}`));
  await boss.start();
  return boss;
}
