/**
 * Which accounts of a customer's AWS Organization the tenant covers, and what a new listing changes (issue 19). Pure:
 * the service lists the organization (recursively through its OUs) and hands the tree here.
 *
 * - Scope: the accounts under the targeted OUs (the root by default), minus excluded OUs (with everything below them)
 *   and excluded accounts; suspended or closing accounts are skipped; the management account only when the customer
 *   opted it in (service-managed StackSets never deploy there). Each account left out says why.
 * - Reconciliation: an account in scope that the tenant does not cover yet is onboarded, once; an account out of
 *   scope is offboarded only after two consecutive complete listings leave it out; a failed or partial listing
 *   changes nothing.
 */

export type AccountStatus = "ACTIVE" | "SUSPENDED" | "PENDING_CLOSURE";

export interface OrganizationAccount {
  id: string;
  name: string;
  status: AccountStatus;
}

export interface OrganizationalUnit {
  /** `r-...` for the root, `ou-...` below it. */
  id: string;
  name: string;
  accounts: OrganizationAccount[];
  children: OrganizationalUnit[];
}

export interface AccountScopeRules {
  /** OUs (or the root) whose accounts, at any depth, are in scope; empty: the root. */
  targetOus: readonly string[];
  /** OUs left out with everything below them. */
  excludeOus: readonly string[];
  excludeAccounts: readonly string[];
  /** The management account, which StackSets skip, is covered only when the customer opted in. */
  includeManagementAccount: boolean;
}

export type OutOfScopeReason = "suspended" | "excluded_ou" | "excluded_account" | "not_in_targeted_ous" | "management_account_not_opted_in";

export interface AccountScope {
  inScope: { accountId: string; name: string; ouPath: string[] }[];
  outOfScope: { accountId: string; reason: OutOfScopeReason }[];
}

/** The accounts in scope of `root` under `rules`, each left-out account with its reason; every account once. */
export function accountScope(root: OrganizationalUnit, rules: AccountScopeRules, managementAccountId: string): AccountScope {
  const targets = new Set(rules.targetOus.length > 0 ? rules.targetOus : [root.id]);
  const excludedOus = new Set(rules.excludeOus);
  const excludedAccounts = new Set(rules.excludeAccounts);
  const scope: AccountScope = { inScope: [], outOfScope: [] };
  const seen = new Set<string>();

  const visit = (unit: OrganizationalUnit, path: string[], targeted: boolean, excluded: boolean) => {
    const here = [...path, unit.id];
    const isTargeted = targeted || targets.has(unit.id);
    const isExcluded = excluded || excludedOus.has(unit.id);
    for (const account of unit.accounts) {
      if (seen.has(account.id)) continue;
      seen.add(account.id);
      const reason = outOfScopeReason(account, { isTargeted, isExcluded, excludedAccounts, rules, managementAccountId });
      if (reason) scope.outOfScope.push({ accountId: account.id, reason });
      else scope.inScope.push({ accountId: account.id, name: account.name, ouPath: here });
    }
    for (const child of unit.children) visit(child, here, isTargeted, isExcluded);
  };
  visit(root, [], false, false);
  return scope;
}

function outOfScopeReason(
  account: OrganizationAccount,
  context: { isTargeted: boolean; isExcluded: boolean; excludedAccounts: Set<string>; rules: AccountScopeRules; managementAccountId: string },
): OutOfScopeReason | undefined {
  if (account.status !== "ACTIVE") return "suspended";
  if (account.id === context.managementAccountId && !context.rules.includeManagementAccount) return "management_account_not_opted_in";
  if (context.excludedAccounts.has(account.id)) return "excluded_account";
  if (context.isExcluded) return "excluded_ou";
  // The management account, opted in, is covered wherever it sits: the customer asked for it by name.
  if (!context.isTargeted && account.id !== context.managementAccountId) return "not_in_targeted_ous";
  return undefined;
}

/** An account the tenant covers, and how many complete listings in a row have left it out. */
export interface CoveredAccount {
  accountId: string;
  listingsOutOfScope: number;
}

/** A listing of the organization: complete, or failed / partial (a page or an OU could not be read). */
export type OrganizationListing = { complete: true; inScope: readonly string[] } | { complete: false };

export interface ReconcileResult {
  /** In scope and not covered yet: onboard each once. */
  onboard: string[];
  /** Out of scope for two complete listings in a row or more: offboard (asked again at each listing until it is gone). */
  offboard: string[];
  /** What the tenant covers after this listing (offboarded ones included until their offboarding ends them). */
  covered: CoveredAccount[];
}

export const LISTINGS_BEFORE_OFFBOARD = 2;

export function reconcileAccounts(covered: readonly CoveredAccount[], listing: OrganizationListing): ReconcileResult {
  if (!listing.complete) return { onboard: [], offboard: [], covered: covered.map((account) => ({ ...account })) };
  const inScope = new Set(listing.inScope);
  const known = new Set(covered.map((account) => account.accountId));
  const next = covered.map((account) => ({
    accountId: account.accountId,
    listingsOutOfScope: inScope.has(account.accountId) ? 0 : account.listingsOutOfScope + 1,
  }));
  const onboard = [...inScope].filter((accountId) => !known.has(accountId));
  const offboard = next.filter((account) => account.listingsOutOfScope >= LISTINGS_BEFORE_OFFBOARD).map((account) => account.accountId);
  return { onboard, offboard, covered: [...next, ...onboard.map((accountId) => ({ accountId, listingsOutOfScope: 0 }))] };
}
