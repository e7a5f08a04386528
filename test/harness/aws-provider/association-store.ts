/**
 * The stand-in's own store of SSM associations.
 *
 * moto has no association API (no CreateAssociation / DescribeAssociation / ListAssociations), so the stand-in
 * provider keeps `aws:ssm/association:Association` resources here instead: one JSON file per association under
 * `$STANDIN_AWS_STATE_DIR/ssm-associations/<account>/<region>/<association-id>.json`, holding the shape of
 * SSM's `AssociationDescription`. Tests that need to see associations (e.g. deployment status) read them with
 * `listStandInAssociations`. One file per association and atomic renames keep concurrent provider processes
 * (several stacks at once) from trampling each other.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface StandInAssociation {
  AssociationId: string;
  AssociationName?: string;
  AssociationVersion: string;
  Name: string;
  DocumentVersion?: string;
  Targets: { Key: string; Values: string[] }[];
  ScheduleExpression?: string;
  Parameters?: Record<string, string[]>;
  MaxConcurrency?: string;
  MaxErrors?: string;
  ComplianceSeverity?: string;
  ApplyOnlyAtCronInterval?: boolean;
  SyncCompliance?: string;
  Tags?: Record<string, string>;
  AccountId: string;
  Region: string;
  Date: string;
  LastUpdateAssociationDate: string;
  Overview: { Status: string; DetailedStatus?: string };
}

export function standInStateDir(): string {
  const dir = process.env.STANDIN_AWS_STATE_DIR;
  if (!dir) {
    throw new Error(
      "STANDIN_AWS_STATE_DIR is not set: the test stand-in AWS provider keeps SSM associations (which moto does not " +
        "implement) in that directory. The vitest global setup sets it; set it in the Pulumi workspace's envVars otherwise.",
    );
  }
  return dir;
}

function associationDir(root: string, accountId: string, region: string): string {
  return join(root, "ssm-associations", accountId || "unknown-account", region);
}

export async function putAssociation(root: string, association: StandInAssociation): Promise<void> {
  const dir = associationDir(root, association.AccountId, association.Region);
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${association.AssociationId}.json`);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, JSON.stringify(association, null, 2));
  await rename(tmp, file);
}

export async function getAssociation(
  root: string,
  accountId: string,
  region: string,
  associationId: string,
): Promise<StandInAssociation | undefined> {
  try {
    const text = await readFile(join(associationDir(root, accountId, region), `${associationId}.json`), "utf8");
    return JSON.parse(text) as StandInAssociation;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Returns true when the association existed. */
export async function deleteAssociation(root: string, accountId: string, region: string, associationId: string) {
  const file = join(associationDir(root, accountId, region), `${associationId}.json`);
  const existed = (await getAssociation(root, accountId, region, associationId)) !== undefined;
  await rm(file, { force: true });
  return existed;
}

/** Associations of one account and region (what ListAssociations would answer), or of every account/region. */
export async function listStandInAssociations(
  filter: { accountId?: string; region?: string } = {},
  root: string = standInStateDir(),
): Promise<StandInAssociation[]> {
  const base = join(root, "ssm-associations");
  const accounts = filter.accountId ? [filter.accountId] : await list(base);
  const result: StandInAssociation[] = [];
  for (const account of accounts) {
    const regions = filter.region ? [filter.region] : await list(join(base, account));
    for (const region of regions) {
      for (const file of await list(join(base, account, region))) {
        if (!file.endsWith(".json")) continue;
        const association = await getAssociation(root, account, region, file.slice(0, -".json".length));
        if (association) result.push(association);
      }
    }
  }
  return result;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}
