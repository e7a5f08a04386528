/** An EKS cluster as an asset, from what DescribeCluster and DescribeNodegroup answer. Pure. */
import { describe, expect, it } from "vitest";
import { eksAsset } from "../../services/discovery/scanner";

describe("an EKS cluster as an asset", () => {
  it("says how its endpoint is reached, how it authenticates and how many nodes its groups want", () => {
    const asset = eksAsset(
      {
        name: "payments",
        arn: "arn:aws:eks:eu-west-1:123456789012:cluster/payments",
        version: "1.33",
        status: "ACTIVE",
        resourcesVpcConfig: { endpointPublicAccess: false, endpointPrivateAccess: true },
        accessConfig: { authenticationMode: "API" },
        tags: { 名前: "決済" },
      },
      [{ scalingConfig: { desiredSize: 2 } }, { scalingConfig: { desiredSize: 1 } }],
      "eu-west-1",
    );
    expect(asset).toMatchObject({
      assetType: "eks",
      assetId: "arn:aws:eks:eu-west-1:123456789012:cluster/payments",
      state: "ACTIVE",
      tags: { 名前: "決済" },
      assetData: { version: "1.33", endpointAccess: "private", authenticationMode: "API", nodeGroups: 2, nodes: 3 },
    });
  });

  it("reads AWS's defaults where EKS leaves a setting out: a public endpoint, an unknown authentication mode", () => {
    const bare = eksAsset({ name: "old", resourcesVpcConfig: {} }, [], "us-east-1");
    expect(bare.assetId).toBe("eks:us-east-1:old");
    expect(bare.assetData).toMatchObject({ endpointAccess: "public", authenticationMode: null, nodes: 0 });
    expect(eksAsset({ name: "x" }, [], "us-east-1").assetData.endpointAccess).toBe("unknown");
  });
});
