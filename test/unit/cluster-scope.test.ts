import { describe, expect, it } from "vitest";
import { appliedClusterAgents, type ClusterAsset, clusterRolloutOf, clusterScopes, coveredClusters } from "../../services/core/cluster-scope-fns";
import type { Targeting } from "../../programs/tenant/config";

const allManaged: Targeting = {
  mode: "all_managed",
  targetTag: { key: "xdr:monitor", value: "true" },
  exclusionTag: { key: "xdr:monitor", value: "false" },
};

function cluster(name: string, data: Record<string, unknown> = {}, tags: Record<string, string> = {}, region = "us-east-1"): ClusterAsset {
  return {
    assetId: `arn:aws:eks:${region}:210987654321:cluster/${name}`,
    region,
    tags,
    assetData: {
      name,
      status: "ACTIVE",
      authenticationMode: "API_AND_CONFIG_MAP",
      endpointAccess: "public_and_private",
      endpoint: `https://${name.toUpperCase()}.gr7.${region}.eks.amazonaws.com`,
      certificateAuthority: "LS0tLS1CRUdJTg==",
      ...data,
    },
  };
}

describe("which EKS clusters the stack covers", () => {
  it("covers an active cluster that allows access entries and has a public endpoint", () => {
    const [scope] = clusterScopes([cluster("web")], allManaged);
    expect(scope).toMatchObject({
      coverage: "covered",
      cluster: { name: "web", region: "us-east-1", endpoint: "https://WEB.gr7.us-east-1.eks.amazonaws.com" },
    });
  });

  it("asks the owner to act on a private-only or ConfigMap-only cluster, with the command that fixes it", () => {
    const [configMap, privateOnly] = clusterScopes(
      [cluster("a-legacy", { authenticationMode: "CONFIG_MAP" }), cluster("b-internal", { endpointAccess: "private" })],
      allManaged,
    );
    expect(configMap).toMatchObject({ coverage: "action_required", reason: expect.stringContaining("aws-auth ConfigMap") });
    expect(configMap!.fix).toBe(
      "aws eks update-cluster-config --region us-east-1 --name a-legacy --access-config authenticationMode=API_AND_CONFIG_MAP, then run an up",
    );
    expect(privateOnly).toMatchObject({ coverage: "action_required", reason: expect.stringContaining("private") });
    expect(privateOnly!.fix).toContain("endpointPublicAccess=true");
    expect(coveredClusters([configMap!, privateOnly!])).toEqual([]);
  });

  it("leaves out a cluster with the exclusion tag, or without the target tag in tag mode", () => {
    const excluded = cluster("lab", {}, { "xdr:monitor": "false" });
    expect(clusterScopes([excluded], allManaged)[0]).toMatchObject({ coverage: "excluded", reason: "tagged xdr:monitor=false" });
    expect(clusterScopes([cluster("web")], { ...allManaged, mode: "tag" })[0]).toMatchObject({ coverage: "excluded" });
    expect(clusterScopes([cluster("web", {}, { "xdr:monitor": "true" })], { ...allManaged, mode: "tag" })[0]!.coverage).toBe("covered");
  });

  it("waits for a cluster that is still being created or whose endpoint discovery has not read", () => {
    expect(clusterScopes([cluster("new", { status: "CREATING" })], allManaged)[0]!.coverage).toBe("pending");
    expect(clusterScopes([cluster("old", { endpoint: null })], allManaged)[0]!.coverage).toBe("pending");
  });

  it("covers at most 50 clusters of an account; the rest say why", () => {
    const many = Array.from({ length: 53 }, (_, i) => cluster(`c${String(i).padStart(2, "0")}`));
    const scopes = clusterScopes(many, allManaged);
    expect(coveredClusters(scopes)).toHaveLength(50);
    expect(scopes.filter((scope) => scope.coverage === "action_required").map((scope) => scope.name)).toEqual(["c50", "c51", "c52"]);
  });
});

describe("a cluster's rollout", () => {
  const [covered] = clusterScopes([cluster("web")], allManaged);
  it("is up_pending until an up applied it, then deploying until every node's pod is ready", () => {
    expect(clusterRolloutOf(covered!, undefined)).toMatchObject({ status: "up_pending", fix: "run an up" });
    expect(clusterRolloutOf(covered!, { desired: 3, ready: 1 })).toMatchObject({ status: "deploying", desired: 3, ready: 1 });
    expect(clusterRolloutOf(covered!, { desired: 3, ready: 3 })).toMatchObject({ status: "protected", reason: null });
  });

  it("reads the applied DaemonSets from the stack's outputs, ignoring what is not one", () => {
    const applied = appliedClusterAgents({ clusters: { "us-east-1/web": { desired: 2, ready: 2 }, "x/y": { desired: "2" } } });
    expect([...applied]).toEqual([["us-east-1/web", { desired: 2, ready: 2 }]]);
    expect(appliedClusterAgents(undefined).size).toBe(0);
  });
});
