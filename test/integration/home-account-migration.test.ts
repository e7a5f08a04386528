/**
 * Migration 0015: today's integration becomes the tenant's first (home) account, on the stack it already has. A
 * database at migration 0013 with tenants in every state is migrated on a real PostgreSQL server; the home accounts
 * name the same account and the same stack (`tenant-<slug>`), so the stack continues as it is (the preview that shows
 * it: test/integration/organization-accounts.test.ts, "the home account").
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMigrations } from "../../db/client";
import { REPO_ROOT } from "../harness/moto";
import { scratchDatabase } from "../harness/scratch-database";

let scratch: { databaseUrl: string; cleanup(): Promise<void> };
let folder: string;
let sql: postgres.Sql;

/** The migrations folder as it was at `lastIndex` (the journal cut there). */
async function migrationsUpTo(lastIndex: number): Promise<string> {
  const journalFile = join(folder, "meta", "_journal.json");
  const journal = JSON.parse(await readFile(join(REPO_ROOT, "migrations", "meta", "_journal.json"), "utf8"));
  journal.entries = journal.entries.filter((entry: { idx: number }) => entry.idx <= lastIndex);
  await writeFile(journalFile, JSON.stringify(journal));
  return folder;
}

beforeAll(async () => {
  scratch = await scratchDatabase("mxdr_migration");
  folder = await mkdtemp(join(tmpdir(), "mxdr-migrations-"));
  await cp(join(REPO_ROOT, "migrations"), folder, { recursive: true });
  sql = postgres(scratch.databaseUrl, { onnotice: () => undefined, max: 2 });
});

afterAll(async () => {
  await sql?.end();
  await scratch?.cleanup();
  if (folder) await rm(folder, { recursive: true, force: true });
});

describe("migration 0015: the tenant's integration becomes its home account", () => {
  it("gives every tenant with an AWS account one home account on its existing stack, and follows later changes", async () => {
    await runMigrations(scratch.databaseUrl, await migrationsUpTo(13));
    await sql`insert into organizations (slug, name, aws_account_id, onboarding_status, status_reasons) values
      ('acme-co', 'Acme', '210987654321', 'completed', null),
      ('broken-co', 'Broken', '310987654321', 'action_required', ${sql.json([{ reason: "the role is gone", fix: "connect again" }])}),
      ('fresh-co', 'Fresh', null, 'not_started', null)`;

    await runMigrations(scratch.databaseUrl, await migrationsUpTo(99));
    const homes = await sql`select o.slug, a.account_id, a.source, a.stack_name, a.status, a.status_reasons
      from tenant_aws_accounts a join organizations o on o.id = a.organization_id order by o.slug`;
    expect(homes.map((row) => ({ ...row }))).toEqual([
      { slug: "acme-co", account_id: "210987654321", source: "home", stack_name: "tenant-acme-co", status: "completed", status_reasons: null },
      {
        slug: "broken-co",
        account_id: "310987654321",
        source: "home",
        stack_name: "tenant-broken-co",
        status: "action_required",
        status_reasons: [{ reason: "the role is gone", fix: "connect again" }],
      },
    ]);

    // Later writes of the tenant's account (settings, a connect) move its home account; clearing it removes it.
    await sql`update organizations set aws_account_id = '410987654321' where slug = 'fresh-co'`;
    await sql`update organizations set aws_account_id = '510987654321' where slug = 'acme-co'`;
    await sql`update organizations set aws_account_id = null where slug = 'broken-co'`;
    const after = await sql`select o.slug, a.account_id, a.stack_name from tenant_aws_accounts a
      join organizations o on o.id = a.organization_id order by o.slug`;
    expect(after.map((row) => ({ ...row }))).toEqual([
      { slug: "acme-co", account_id: "510987654321", stack_name: "tenant-acme-co" },
      { slug: "fresh-co", account_id: "410987654321", stack_name: "tenant-fresh-co" },
    ]);

    // An account the tenant's organization already covers, on its own stack, gets no second row as the home account.
    const [fresh] = await sql`select id from organizations where slug = 'fresh-co'`;
    await sql`insert into tenant_aws_accounts (organization_id, account_id, source, stack_name, status)
      values (${fresh!.id}, '610987654321', 'organization', 'tenant-fresh-co_610987654321', 'completed')`;
    await sql`update organizations set aws_account_id = '610987654321' where slug = 'fresh-co'`;
    const covered = await sql`select account_id, source from tenant_aws_accounts where organization_id = ${fresh!.id}`;
    expect(covered.map((row) => ({ ...row }))).toEqual([{ account_id: "610987654321", source: "organization" }]);
  });
});
