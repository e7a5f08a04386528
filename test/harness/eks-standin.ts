/**
 * An EKS stand-in on 127.0.0.1, in front of moto, for what moto's EKS lacks, answered as AWS does, per account (the
 * caller's account from the STS stand-in's sessions) and per region (the SigV4 credential scope):
 *
 * - A cluster's authentication mode. moto drops CreateCluster's `accessConfig` and DescribeCluster answers none; AWS
 *   keeps it and answers it, CONFIG_MAP when a cluster was created through the API without one.
 * - An identity policy without the EKS reads (a role from before cluster discovery): AWS answers ListClusters with 403
 *   AccessDeniedException, "... is not authorized to perform: eks:ListClusters on resource: ... because no
 *   identity-based policy allows the eks:ListClusters action". moto evaluates no policy.
 *
 * - Access entries and their access policies (moto has none of the calls): Create/Describe/List/DeleteAccessEntry,
 *   Associate/DisassociateAccessPolicy and ListAssociatedAccessPolicies, per cluster of the caller's account and
 *   region, refused as EKS refuses them (no such cluster, an entry twice, a CONFIG_MAP-only cluster).
 * - A cluster that stands for a real API server (attachCluster: a test's kube-apiserver on 127.0.0.1): DescribeCluster
 *   answers that server's endpoint and CA, and the stand-in is the API server's token webhook, as EKS is its
 *   clusters': a `k8s-aws-v1.` bearer token is the base64url of a presigned STS GetCallerIdentity URL, replayed
 *   against the STS endpoint it trusts (`stsUrl`, which must be the URL's host, with the cluster's name in the signed
 *   `x-k8s-aws-id` header); the caller's role is looked up in the cluster's access entries, and the user is the
 *   entry's user name with the entry's groups and one group per access policy associated cluster-wide,
 *   `eks-access-policy:<name>`. attachCluster binds those groups to Kubernetes' own roles in the cluster (the EKS
 *   authorizer's policies are Kubernetes' user-facing roles: AmazonEKSClusterAdminPolicy is cluster-admin, ...), so
 *   the API server's RBAC authorizer decides. Namespace-scoped associations grant nothing here.
 *
 * Every other call, and these for accounts and regions not configured here, go to moto unchanged. Tests point the
 * SDK at it with the standard AWS_ENDPOINT_URL_EKS.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { forwardRequest, readRequestBody, relayAnswer } from "./request-body";

export interface EksStandInOptions {
  motoUrl: string;
  /** The account of a session (its access key id); the STS stand-in's accountOf. */
  accountOf(accessKeyId: string | undefined): string | undefined;
  /** Per account: regions where the caller's policy allows no EKS read. */
  eksReadsDenied?: Record<string, readonly string[]>;
  /** The STS endpoint tokens must be presigned for (the STS stand-in in front of moto). */
  stsUrl?: string;
}

/** A real API server that stands for an EKS cluster (test/harness/kubernetes-cluster.ts). */
export interface AttachedApiServer {
  server: string;
  caPem: string;
  /** A request as the cluster's admin, to bind the access policies' groups. */
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

interface AccessEntry {
  principalArn: string;
  accessEntryArn: string;
  kubernetesGroups: string[];
  username: string;
  type: string;
  tags: Record<string, string>;
  createdAt: number;
  policies: Map<string, { policyArn: string; accessScope: { type: string; namespaces?: string[] }; associatedAt: number }>;
}

/** The Kubernetes role each EKS access policy stands for (EKS documents them as Kubernetes' user-facing roles). */
const POLICY_ROLES: Record<string, string> = {
  AmazonEKSClusterAdminPolicy: "cluster-admin",
  AmazonEKSAdminPolicy: "admin",
  AmazonEKSEditPolicy: "edit",
  AmazonEKSViewPolicy: "view",
  AmazonEKSAdminViewPolicy: "view",
};
const policyGroup = (policyName: string) => `eks-access-policy:${policyName}`;

export interface EksStandIn {
  url: string;
  /** Calls answered (or amended) here rather than by moto alone. */
  answered: { action: string; accountId: string; region: string }[];
  /** Token reviews: the cluster, the caller's ARN (when STS answered) and whether the token was admitted. */
  tokenReviews: { cluster: string; arn?: string; authenticated: boolean; reason?: string }[];
  /** Makes the cluster `<account>/<region>/<name>` (created through EKS) answer for `apiServer`, and binds the policy groups there. */
  attachCluster(cluster: { accountId: string; region: string; name: string }, apiServer: AttachedApiServer): Promise<void>;
  /** The kubeconfig for kube-apiserver's --authentication-token-webhook-config-file of that cluster. */
  tokenWebhookKubeconfig(cluster: { accountId: string; region: string; name: string }): string;
  /** The access entries of a cluster, as EKS lists them: principal ARN -> associated policy ARNs. */
  accessEntriesOf(cluster: { accountId: string; region: string; name: string }): Record<string, string[]>;
  stop(): Promise<void>;
}

const json = (res: ServerResponse, status: number, body: unknown, errorType?: string) => {
  res.writeHead(status, { "content-type": "application/json", ...(errorType ? { "x-amzn-errortype": errorType } : {}) });
  res.end(JSON.stringify(body));
};

const AUTHENTICATION_MODES = new Set(["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"]);

export async function startEksStandIn(options: EksStandInOptions): Promise<EksStandIn> {
  const answered: EksStandIn["answered"] = [];
  const target = new URL(options.motoUrl);
  /** `<account>/<region>/<cluster>` -> the authentication mode it was created with. */
  const modes = new Map<string, string>();
  /** `<account>/<region>/<cluster>` -> principal ARN -> its access entry. */
  const entries = new Map<string, Map<string, AccessEntry>>();
  const attached = new Map<string, AttachedApiServer>();
  const tokenReviews: EksStandIn["tokenReviews"] = [];
  const keyOf = (c: { accountId: string; region: string; name: string }) => `${c.accountId}/${c.region}/${c.name}`;

  /** Whether moto knows the cluster in the caller's account and region (asked with the caller's own signature). */
  async function clusterExists(req: IncomingMessage, name: string): Promise<boolean> {
    const answer = await fetch(new URL(`/clusters/${encodeURIComponent(name)}`, target), {
      headers: { authorization: String(req.headers.authorization ?? ""), "x-amz-date": String(req.headers["x-amz-date"] ?? "") },
    });
    await answer.arrayBuffer();
    return answer.ok;
  }

  /** The access entry calls (moto has none); true when answered. */
  async function answerAccessEntries(req: IncomingMessage, res: ServerResponse, path: string, body: Buffer, accountId: string, region: string) {
    const match = /^\/clusters\/([^/]+)\/access-entries(?:\/([^/]+)(?:\/access-policies(?:\/([^/]+))?)?)?$/.exec(path);
    if (!match) return false;
    const name = decodeURIComponent(match[1]!);
    const principalArn = match[2] ? decodeURIComponent(match[2]) : undefined;
    const policyPath = path.includes("/access-policies");
    const policyArn = match[3] ? decodeURIComponent(match[3]) : undefined;
    const key = `${accountId}/${region}/${name}`;
    const input = JSON.parse(body.toString("utf8") || "{}") as Record<string, unknown>;
    const action = `${req.method} ${policyPath ? "access-policies" : "access-entries"}`;
    answered.push({ action, accountId, region });
    if (!(await clusterExists(req, name))) {
      json(res, 404, { message: `No cluster found for name: ${name}.` }, "ResourceNotFoundException");
      return true;
    }
    const clusterEntries = entries.get(key) ?? new Map<string, AccessEntry>();
    entries.set(key, clusterEntries);
    const entryOut = (e: AccessEntry) => ({
      clusterName: name,
      principalArn: e.principalArn,
      accessEntryArn: e.accessEntryArn,
      kubernetesGroups: e.kubernetesGroups,
      username: e.username,
      type: e.type,
      tags: e.tags,
      createdAt: e.createdAt,
      modifiedAt: e.createdAt,
    });
    const policyOut = (p: AccessEntry["policies"] extends Map<string, infer V> ? V : never) => ({ ...p, modifiedAt: p.associatedAt });

    if (req.method === "POST" && !principalArn) {
      const arn = String(input.principalArn ?? "");
      if ((modes.get(key) ?? "CONFIG_MAP") === "CONFIG_MAP") {
        json(
          res,
          400,
          { message: "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation." },
          "InvalidRequestException",
        );
        return true;
      }
      if (clusterEntries.has(arn)) {
        json(res, 409, { message: `The specified access entry resource is already in use on this cluster.` }, "ResourceInUseException");
        return true;
      }
      const role = /^arn:aws:iam::(\d{12}):(role|user)\/(?:.*\/)?([\w+=,.@-]+)$/.exec(arn);
      if (!role) {
        json(res, 400, { message: `The principalArn parameter format is not valid` }, "InvalidParameterException");
        return true;
      }
      const entry: AccessEntry = {
        principalArn: arn,
        accessEntryArn: `arn:aws:eks:${region}:${accountId}:access-entry/${name}/${role[2]}/${role[1]}/${role[3]}/${randomUUID()}`,
        kubernetesGroups: (input.kubernetesGroups as string[] | undefined) ?? [],
        username:
          (input.username as string | undefined) ?? (role[2] === "role" ? `arn:aws:sts::${role[1]}:assumed-role/${role[3]}/{{SessionName}}` : arn),
        type: String(input.type ?? "STANDARD"),
        tags: (input.tags as Record<string, string> | undefined) ?? {},
        createdAt: Date.now() / 1000,
        policies: new Map(),
      };
      clusterEntries.set(arn, entry);
      json(res, 200, { accessEntry: entryOut(entry) });
      return true;
    }
    if (req.method === "GET" && !principalArn) {
      json(res, 200, { accessEntries: [...clusterEntries.keys()] });
      return true;
    }
    const entry = principalArn ? clusterEntries.get(principalArn) : undefined;
    if (!entry) {
      json(res, 404, { message: `The specified principalArn could not be found.` }, "ResourceNotFoundException");
      return true;
    }
    if (!policyPath) {
      if (req.method === "GET") json(res, 200, { accessEntry: entryOut(entry) });
      else if (req.method === "DELETE") {
        clusterEntries.delete(entry.principalArn);
        json(res, 200, {});
      } else json(res, 405, { message: "not supported by the stand-in" }, "InvalidRequestException");
      return true;
    }
    if (req.method === "POST" && !policyArn) {
      const arn = String(input.policyArn ?? "");
      const policyName = /^arn:aws:eks::aws:cluster-access-policy\/(\w+)$/.exec(arn)?.[1];
      if (!policyName || !(policyName in POLICY_ROLES)) {
        json(res, 404, { message: `The specified access policy ${arn} could not be found.` }, "ResourceNotFoundException");
        return true;
      }
      const scope = (input.accessScope as { type?: string; namespaces?: string[] } | undefined) ?? {};
      const policy = {
        policyArn: arn,
        accessScope: { type: String(scope.type ?? "cluster"), ...(scope.namespaces?.length ? { namespaces: scope.namespaces } : {}) },
        associatedAt: Date.now() / 1000,
      };
      entry.policies.set(arn, policy);
      json(res, 200, { clusterName: name, principalArn: entry.principalArn, associatedAccessPolicy: policyOut(policy) });
      return true;
    }
    if (req.method === "GET" && !policyArn) {
      json(res, 200, { clusterName: name, principalArn: entry.principalArn, associatedAccessPolicies: [...entry.policies.values()].map(policyOut) });
      return true;
    }
    if (req.method === "DELETE" && policyArn) {
      entry.policies.delete(policyArn);
      json(res, 200, {});
      return true;
    }
    json(res, 405, { message: "not supported by the stand-in" }, "InvalidRequestException");
    return true;
  }

  /** kube-apiserver's TokenReview of a bearer token for the cluster `key`. */
  async function reviewToken(key: string, token: string): Promise<{ authenticated: boolean; user?: unknown; error?: string }> {
    const name = key.split("/")[2]!;
    const refuse = (reason: string, arn?: string) => {
      tokenReviews.push({ cluster: key, arn, authenticated: false, reason });
      return { authenticated: false, error: reason };
    };
    if (!token.startsWith("k8s-aws-v1.")) return refuse("not an EKS token");
    let url: URL;
    try {
      url = new URL(Buffer.from(token.slice("k8s-aws-v1.".length), "base64url").toString("utf8"));
    } catch {
      return refuse("the token is not a URL");
    }
    const trusted = options.stsUrl ? new URL(options.stsUrl) : undefined;
    if (!trusted || url.host !== trusted.host || url.protocol !== trusted.protocol) return refuse(`the token's URL is not STS (${url.host})`);
    const signed = (url.searchParams.get("X-Amz-SignedHeaders") ?? "").split(";");
    if (url.searchParams.get("Action") !== "GetCallerIdentity" || !signed.includes("x-k8s-aws-id")) {
      return refuse("the token is not a presigned GetCallerIdentity for a cluster");
    }
    const answer = await fetch(url, { headers: { "x-k8s-aws-id": name } });
    const text = await answer.text();
    const arn = /<Arn>([^<]+)<\/Arn>/.exec(text)?.[1];
    if (!answer.ok || !arn) return refuse(`STS refused the token (${answer.status})`);
    const assumed = /^arn:aws:sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/.exec(arn);
    const principalArn = assumed ? `arn:aws:iam::${assumed[1]}:role/${assumed[2]}` : arn;
    const entry = [...(entries.get(key)?.values() ?? [])].find((e) => e.principalArn.replace(/:role\/.*\//, ":role/") === principalArn);
    if (!entry) return refuse("no access entry for the caller", arn);
    const groups = [
      ...entry.kubernetesGroups,
      ...[...entry.policies.values()].filter((p) => p.accessScope.type === "cluster").map((p) => policyGroup(p.policyArn.split("/").at(-1)!)),
    ];
    tokenReviews.push({ cluster: key, arn, authenticated: true });
    return {
      authenticated: true,
      user: { username: entry.username.replace("{{SessionName}}", assumed?.[3] ?? ""), uid: `aws-iam-authenticator:${principalArn}`, groups },
    };
  }

  const server: Server = createServer(async (req, res) => {
    const body = await readRequestBody(req);
    const review = /^\/token-review\/(\d{12}\/[a-z0-9-]+\/[^/]+)$/.exec(new URL(req.url ?? "/", "http://stand-in").pathname);
    if (req.method === "POST" && review) {
      const key = decodeURIComponent(review[1]!);
      const request = JSON.parse(body.toString("utf8") || "{}") as { spec?: { token?: string } };
      const status = await reviewToken(key, request.spec?.token ?? "").catch((error: unknown) => ({ authenticated: false, error: String(error) }));
      json(res, 200, { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", status });
      return;
    }
    const credential = /Credential=([^/]+)\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ""));
    const accountId = options.accountOf(credential?.[1]) ?? "unknown";
    const region = credential?.[2] ?? "us-east-1";
    const path = new URL(req.url ?? "/", "http://stand-in").pathname;
    const listing = req.method === "GET" && path === "/clusters";
    const describing = req.method === "GET" ? /^\/clusters\/([^/]+)$/.exec(path)?.[1] : undefined;

    if (await answerAccessEntries(req, res, path, body, accountId, region)) return;
    if (req.method === "DELETE" && /^\/clusters\/[^/]+$/.test(path))
      entries.delete(`${accountId}/${region}/${decodeURIComponent(path.split("/")[2]!)}`);

    if (listing && options.eksReadsDenied?.[accountId]?.includes(region)) {
      answered.push({ action: "ListClusters", accountId, region });
      res.writeHead(403, { "content-type": "application/json", "x-amzn-errortype": "AccessDeniedException" });
      res.end(
        JSON.stringify({
          message: `User: arn:aws:sts::${accountId}:assumed-role/caller/session is not authorized to perform: eks:ListClusters on resource: arn:aws:eks:${region}:${accountId}:cluster/* because no identity-based policy allows the eks:ListClusters action`,
        }),
      );
      return;
    }
    if (req.method === "POST" && path === "/clusters") {
      const input = JSON.parse(body.toString("utf8") || "{}") as { name?: string; accessConfig?: { authenticationMode?: string } };
      const mode = input.accessConfig?.authenticationMode;
      if (input.name && mode && AUTHENTICATION_MODES.has(mode)) modes.set(`${accountId}/${region}/${input.name}`, mode);
    }

    forwardRequest(target, req, body, (status, headers, text) => {
      let out = text;
      if (describing && status === 200) {
        const described = JSON.parse(out.toString("utf8")) as { cluster?: Record<string, unknown> };
        if (described.cluster) {
          const name = decodeURIComponent(describing);
          described.cluster.accessConfig = { authenticationMode: modes.get(`${accountId}/${region}/${name}`) ?? "CONFIG_MAP" };
          const apiServer = attached.get(`${accountId}/${region}/${name}`);
          if (apiServer) {
            described.cluster.endpoint = apiServer.server;
            described.cluster.certificateAuthority = { data: Buffer.from(apiServer.caPem).toString("base64") };
          }
          out = Buffer.from(JSON.stringify(described));
          answered.push({ action: "DescribeCluster", accountId, region });
        }
      }
      relayAnswer(res, status, headers, out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    answered,
    tokenReviews,
    async attachCluster(cluster, apiServer) {
      attached.set(keyOf(cluster), apiServer);
      for (const [policyName, role] of Object.entries(POLICY_ROLES)) {
        const bindingName = `eks-access-policy-${policyName.toLowerCase()}`;
        const answer = await apiServer.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
          metadata: { name: bindingName },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: policyGroup(policyName) }],
        });
        if (answer.status !== 201 && answer.status !== 409) throw new Error(`binding ${policyName} in the cluster: HTTP ${answer.status}`);
      }
    },
    tokenWebhookKubeconfig(cluster) {
      const server = `${url}/token-review/${cluster.accountId}/${cluster.region}/${encodeURIComponent(cluster.name)}`;
      return [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "  - name: eks-standin",
        "    cluster:",
        `      server: ${JSON.stringify(server)}`,
        "users:",
        "  - name: kube-apiserver",
        "    user: {}",
        "contexts:",
        "  - name: webhook",
        "    context: { cluster: eks-standin, user: kube-apiserver }",
        "current-context: webhook",
        "",
      ].join("\n");
    },
    accessEntriesOf(cluster) {
      return Object.fromEntries([...(entries.get(keyOf(cluster))?.values() ?? [])].map((e) => [e.principalArn, [...e.policies.keys()]]));
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
