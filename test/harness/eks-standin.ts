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
 * Every other call, and these for accounts and regions not configured here, go to moto unchanged. Tests point the
 * SDK at it with the standard AWS_ENDPOINT_URL_EKS.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { forwardRequest, readRequestBody, relayAnswer } from "./request-body";

export interface EksStandInOptions {
  motoUrl: string;
  /** The account of a session (its access key id); the STS stand-in's accountOf. */
  accountOf(accessKeyId: string | undefined): string | undefined;
  /** Per account: regions where the caller's policy allows no EKS read. */
  eksReadsDenied?: Record<string, readonly string[]>;
}

export interface EksStandIn {
  url: string;
  /** Calls answered (or amended) here rather than by moto alone. */
  answered: { action: string; accountId: string; region: string }[];
  stop(): Promise<void>;
}

const AUTHENTICATION_MODES = new Set(["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"]);

export async function startEksStandIn(options: EksStandInOptions): Promise<EksStandIn> {
  const answered: EksStandIn["answered"] = [];
  const target = new URL(options.motoUrl);
  /** `<account>/<region>/<cluster>` -> the authentication mode it was created with. */
  const modes = new Map<string, string>();

  const server: Server = createServer(async (req, res) => {
    const body = await readRequestBody(req);
    const credential = /Credential=([^/]+)\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ""));
    const accountId = options.accountOf(credential?.[1]) ?? "unknown";
    const region = credential?.[2] ?? "us-east-1";
    const path = new URL(req.url ?? "/", "http://stand-in").pathname;
    const listing = req.method === "GET" && path === "/clusters";
    const describing = req.method === "GET" ? /^\/clusters\/([^/]+)$/.exec(path)?.[1] : undefined;

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
          out = Buffer.from(JSON.stringify(described));
          answered.push({ action: "DescribeCluster", accountId, region });
        }
      }
      relayAnswer(res, status, headers, out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answered,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
