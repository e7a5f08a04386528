/** The service's job engine: one pg-boss instance on the service's PostgreSQL, shared by the stack-run and discovery queues. */
import { PgBoss } from "pg-boss";

export async function startBoss(connectionString: string, log: (message: string) => void = console.error): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString, max: 4 });
  boss.on("error", (error: Error) => log(`queue: ${error.message}`));
  await boss.start();
  return boss;
}
