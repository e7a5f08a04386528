/**
 * Which accounts of an AWS Organization a tenant covers, and what each listing changes (issue 19): an organization
 * with OUs three levels deep, 13 member accounts, a suspended one, an excluded OU and the management account.
 */
import { describe, expect, it } from "vitest";
import {
  accountScope,
  reconcileAccounts,
  type AccountScopeRules,
  type CoveredAccount,
  type OrganizationalUnit,
} from "../../services/organization/account-scope-fns";

const MANAGEMENT = "100000000000";
const account = (id: string, status: "ACTIVE" | "SUSPENDED" | "PENDING_CLOSURE" = "ACTIVE") => ({ id, name: `acct-${id}`, status });
const ou = (id: string, accounts: ReturnType<typeof account>[], children: OrganizationalUnit[] = []): OrganizationalUnit => ({
  id,
  name: id,
  accounts,
  children,
});

/** root ─ prod ─ prod-eu ─ prod-eu-payments; root ─ dev; root ─ sandbox (excluded); root ─ suspended-holder. */
const organization = ou(
  "r-root",
  [account(MANAGEMENT), account("100000000001")],
  [
    ou(
      "ou-prod",
      [account("200000000001"), account("200000000002")],
      [
        ou(
          "ou-prod-eu",
          [account("210000000001"), account("210000000002")],
          [ou("ou-prod-eu-payments", [account("211000000001"), account("211000000002")])],
        ),
      ],
    ),
    ou("ou-dev", [account("300000000001"), account("300000000002"), account("300000000003", "PENDING_CLOSURE")]),
    ou("ou-sandbox", [account("400000000001")], [ou("ou-sandbox-deep", [account("410000000001")])]),
    ou("ou-holding", [account("500000000001", "SUSPENDED")]),
  ],
);

const allOfIt: AccountScopeRules = { targetOus: [], excludeOus: ["ou-sandbox"], excludeAccounts: [], includeManagementAccount: false };

describe("the accounts in scope", () => {
  it("covers every active account under the root at any depth, minus the excluded OU and everything below it", () => {
    const scope = accountScope(organization, allOfIt, MANAGEMENT);
    expect(scope.inScope.map((entry) => entry.accountId).sort()).toEqual(
      [
        "100000000001",
        "200000000001",
        "200000000002",
        "210000000001",
        "210000000002",
        "211000000001",
        "211000000002",
        "300000000001",
        "300000000002",
      ].sort(),
    );
    expect(scope.inScope.find((entry) => entry.accountId === "211000000002")!.ouPath).toEqual([
      "r-root",
      "ou-prod",
      "ou-prod-eu",
      "ou-prod-eu-payments",
    ]);
  });

  it("names why each other account is left out: suspended or closing, the excluded OU, the management account", () => {
    const { outOfScope } = accountScope(organization, allOfIt, MANAGEMENT);
    expect(Object.fromEntries(outOfScope.map((entry) => [entry.accountId, entry.reason]))).toEqual({
      [MANAGEMENT]: "management_account_not_opted_in",
      "300000000003": "suspended",
      "400000000001": "excluded_ou",
      "410000000001": "excluded_ou",
      "500000000001": "suspended",
    });
  });

  it("lists every account of the organization exactly once, in scope or out", () => {
    const scope = accountScope(organization, allOfIt, MANAGEMENT);
    const ids = [...scope.inScope.map((entry) => entry.accountId), ...scope.outOfScope.map((entry) => entry.accountId)];
    expect(ids).toHaveLength(14);
    expect(new Set(ids).size).toBe(14);
  });

  it("targets chosen OUs with everything below them; the opted-in management account is covered wherever it sits", () => {
    const scope = accountScope(
      organization,
      { targetOus: ["ou-prod-eu"], excludeOus: [], excludeAccounts: ["210000000002"], includeManagementAccount: true },
      MANAGEMENT,
    );
    expect(scope.inScope.map((entry) => entry.accountId).sort()).toEqual([MANAGEMENT, "210000000001", "211000000001", "211000000002"].sort());
    const reasons = Object.fromEntries(scope.outOfScope.map((entry) => [entry.accountId, entry.reason]));
    expect(reasons["210000000002"]).toBe("excluded_account");
    expect(reasons["200000000001"]).toBe("not_in_targeted_ous");
    expect(reasons["300000000003"]).toBe("suspended");
  });
});

describe("reconciling a listing", () => {
  const covered = (...ids: string[]): CoveredAccount[] => ids.map((accountId) => ({ accountId, listingsOutOfScope: 0 }));

  it("onboards each account in scope that is not covered yet, once: the same listing twice onboards nothing more", () => {
    const first = reconcileAccounts(covered("a"), { complete: true, inScope: ["a", "b", "c"] });
    expect(first.onboard).toEqual(["b", "c"]);
    const second = reconcileAccounts(first.covered, { complete: true, inScope: ["a", "b", "c"] });
    expect(second).toEqual({ onboard: [], offboard: [], covered: first.covered });
  });

  it("offboards an account only after two complete listings in a row leave it out", () => {
    const once = reconcileAccounts(covered("a", "b"), { complete: true, inScope: ["a"] });
    expect(once.offboard).toEqual([]);
    const twice = reconcileAccounts(once.covered, { complete: true, inScope: ["a"] });
    expect(twice.offboard).toEqual(["b"]);
  });

  it("an account back in scope before the second listing stays, and its count starts again", () => {
    const out = reconcileAccounts(covered("a", "b"), { complete: true, inScope: ["a"] });
    const back = reconcileAccounts(out.covered, { complete: true, inScope: ["a", "b"] });
    const outAgain = reconcileAccounts(back.covered, { complete: true, inScope: ["a"] });
    expect([out.offboard, back.offboard, outAgain.offboard]).toEqual([[], [], []]);
  });

  it("a failed or partial listing changes nothing, and does not count as a listing that left an account out", () => {
    const out = reconcileAccounts(covered("a", "b"), { complete: true, inScope: ["a"] });
    const failed = reconcileAccounts(out.covered, { complete: false });
    expect(failed).toEqual({ onboard: [], offboard: [], covered: out.covered });
    expect(reconcileAccounts(failed.covered, { complete: false }).offboard).toEqual([]);
    // The next complete listing is the second one that leaves b out.
    expect(reconcileAccounts(failed.covered, { complete: true, inScope: ["a"] }).offboard).toEqual(["b"]);
  });

  it("an account whose offboarding did not take is asked again at the next listing", () => {
    const twice = reconcileAccounts(reconcileAccounts(covered("a", "b"), { complete: true, inScope: ["a"] }).covered, {
      complete: true,
      inScope: ["a"],
    });
    expect(reconcileAccounts(twice.covered, { complete: true, inScope: ["a"] }).offboard).toEqual(["b"]);
  });
});
