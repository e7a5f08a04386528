/**
 * Lists a customer's AWS Organization through the reader role in its management account (or delegated administrator):
 * the root, every OU below it at any depth, and each OU's accounts, page by page. A listing is all or nothing: any
 * refused or failed call, or an organization past the caps, throws, and a failed listing changes nothing downstream
 * (account-scope-fns.ts). Endpoints come from the standard environment (AWS_ENDPOINT_URL).
 */
import type { CredentialsProvider } from "../core/assume-role";
import type { AccountStatus, OrganizationAccount, OrganizationalUnit } from "./account-scope-fns";

/** A tenant's organization is listed at most this far: a hostile or runaway organization cannot exhaust the service. */
export const LISTING_CAPS = { accounts: 5_000, organizationalUnits: 2_000, depth: 6 } as const;

export class OrganizationListingError extends Error {
  override readonly name = "OrganizationListingError";
  constructor(
    message: string,
    /** AWS's error name (AccessDenied, AWSOrganizationsNotInUseException, ...), when AWS refused. */
    readonly awsCode?: string,
  ) {
    super(message);
  }
}

export interface OrganizationTree {
  managementAccountId: string;
  root: OrganizationalUnit;
  accounts: number;
}

function accountStatus(account: { State?: string; Status?: string }): AccountStatus {
  // `State` replaced the deprecated `Status` (ACTIVE / SUSPENDED / PENDING_CLOSURE); CLOSED counts as suspended.
  const state = account.State ?? account.Status;
  if (state === "ACTIVE") return "ACTIVE";
  if (state === "PENDING_CLOSURE") return "PENDING_CLOSURE";
  return "SUSPENDED";
}

export async function listOrganization(credentials: CredentialsProvider): Promise<OrganizationTree> {
  const {
    DescribeOrganizationCommand,
    ListAccountsForParentCommand,
    ListOrganizationalUnitsForParentCommand,
    ListRootsCommand,
    OrganizationsClient,
  } = await import("@aws-sdk/client-organizations");
  // Organizations is a global service, served from us-east-1.
  const client = new OrganizationsClient({ region: "us-east-1", credentials, maxAttempts: 4 });
  let accounts = 0;
  let units = 0;

  const call = async <T>(what: string, send: () => Promise<T>): Promise<T> => {
    try {
      return await send();
    } catch (error) {
      const name = (error as { name?: string }).name;
      throw new OrganizationListingError(`${what}: ${name ? `${name}: ` : ""}${error instanceof Error ? error.message : String(error)}`, name);
    }
  };

  async function pages<T>(what: string, page: (token: string | undefined) => Promise<{ items: T[]; next?: string }>): Promise<T[]> {
    const all: T[] = [];
    let token: string | undefined;
    do {
      const result = await call(what, () => page(token));
      all.push(...result.items);
      token = result.next;
    } while (token);
    return all;
  }

  async function unitOf(id: string, name: string, depth: number): Promise<OrganizationalUnit> {
    if (depth > LISTING_CAPS.depth) throw new OrganizationListingError(`the organization is deeper than ${LISTING_CAPS.depth} OU levels`);
    const listed = await pages(`ListAccountsForParent ${id}`, async (NextToken) => {
      const out = await client.send(new ListAccountsForParentCommand({ ParentId: id, NextToken }));
      return { items: out.Accounts ?? [], next: out.NextToken };
    });
    accounts += listed.length;
    if (accounts > LISTING_CAPS.accounts) throw new OrganizationListingError(`the organization has more than ${LISTING_CAPS.accounts} accounts`);
    const childUnits = await pages(`ListOrganizationalUnitsForParent ${id}`, async (NextToken) => {
      const out = await client.send(new ListOrganizationalUnitsForParentCommand({ ParentId: id, NextToken }));
      return { items: out.OrganizationalUnits ?? [], next: out.NextToken };
    });
    units += childUnits.length;
    if (units > LISTING_CAPS.organizationalUnits) {
      throw new OrganizationListingError(`the organization has more than ${LISTING_CAPS.organizationalUnits} OUs`);
    }
    const children: OrganizationalUnit[] = [];
    for (const child of childUnits) children.push(await unitOf(child.Id!, child.Name ?? child.Id!, depth + 1));
    const members: OrganizationAccount[] = listed.map((account) => ({
      id: account.Id!,
      name: account.Name ?? account.Id!,
      status: accountStatus(account),
    }));
    return { id, name, accounts: members, children };
  }

  try {
    const organization = await call("DescribeOrganization", () => client.send(new DescribeOrganizationCommand({})));
    const managementAccountId = organization.Organization?.MasterAccountId;
    if (!managementAccountId) throw new OrganizationListingError("DescribeOrganization returned no management account");
    const roots = await pages("ListRoots", async (NextToken) => {
      const out = await client.send(new ListRootsCommand({ NextToken }));
      return { items: out.Roots ?? [], next: out.NextToken };
    });
    const root = roots[0];
    if (!root?.Id) throw new OrganizationListingError("ListRoots returned no root");
    return { managementAccountId, root: await unitOf(root.Id, root.Name ?? "Root", 0), accounts };
  } finally {
    client.destroy();
  }
}
