/**
 * The narrowest stand-in for the two SSM calls moto does not implement (shared/TOOLCHAIN-NOTES.md):
 * DescribeInstanceInformation (which instances are SSM managed instances) and DescribeInstanceAssociationsStatus
 * (what the association did on an instance). An HTTP server on 127.0.0.1, set as the SSM endpoint through the SDK's
 * standard AWS_ENDPOINT_URL_SSM, answers those two from a table the test controls and forwards every other SSM
 * call (SendCommand, GetCommandInvocation, parameters, documents) unchanged to the moto server. It records which
 * access key signed each call, so a test can prove the tenant's assumed-role session was used.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ManagedInstance {
  instanceId: string;
  platformType: "Linux" | "Windows";
  pingStatus?: "Online" | "ConnectionLost" | "Inactive";
  /** The association's result on this instance for a document; none = it has not run there. */
  association?: { documentName: string; status: "Success" | "Failed" | "Pending" | "InProgress"; detailedStatus?: string; errorCode?: string; executedAt: Date };
}

export interface SsmCall {
  action: string;
  accessKeyId: string | undefined;
  emulated: boolean;
  /** The request's JSON body. */
  input: Record<string, unknown>;
}

export interface SsmStandIn {
  endpoint: string;
  /** Replaces the managed-instance table. */
  setInstances(instances: ManagedInstance[]): void;
  calls: SsmCall[];
  stop(): Promise<void>;
}

const EMULATED = new Set(["DescribeInstanceInformation", "DescribeInstanceAssociationsStatus"]);

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

const epochSeconds = (date: Date) => date.getTime() / 1000;

export async function startSsmStandIn(motoEndpoint: string): Promise<SsmStandIn> {
  let table = new Map<string, ManagedInstance>();
  const calls: SsmCall[] = [];
  const moto = new URL(motoEndpoint);

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
    res.end(JSON.stringify(body));
  };

  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    const action = String(req.headers["x-amz-target"] ?? "").replace(/^AmazonSSM\./, "");
    const accessKeyId = /Credential=([^/]+)\//.exec(String(req.headers.authorization ?? ""))?.[1];
    let input: Record<string, unknown> = {};
    try {
      input = JSON.parse(body.toString("utf8") || "{}") as Record<string, unknown>;
    } catch {
      // not JSON: forwarded as is
    }
    calls.push({ action, accessKeyId, emulated: EMULATED.has(action), input });
    if (action === "DescribeInstanceInformation") {
      return answer(res, 200, {
        InstanceInformationList: [...table.values()].map((instance) => ({
          InstanceId: instance.instanceId,
          PingStatus: instance.pingStatus ?? "Online",
          PlatformType: instance.platformType,
          AgentVersion: "3.3.0.0",
          ResourceType: "EC2Instance",
        })),
      });
    }
    if (action === "DescribeInstanceAssociationsStatus") {
      const InstanceId = String(input.InstanceId);
      const instance = table.get(InstanceId);
      if (!instance) return answer(res, 400, { __type: "InvalidInstanceId", message: `${InstanceId} is not a managed instance` });
      const association = instance.association;
      return answer(res, 200, {
        InstanceAssociationStatusInfos: association
          ? [
              {
                AssociationId: `assoc-${InstanceId}`,
                Name: association.documentName,
                InstanceId,
                ExecutionDate: epochSeconds(association.executedAt),
                Status: association.status,
                DetailedStatus: association.detailedStatus ?? association.status,
                ...(association.errorCode ? { ErrorCode: association.errorCode } : {}),
              },
            ]
          : [],
      });
    }
    const forwarded = request(
      { hostname: moto.hostname, port: moto.port, method: req.method, path: req.url, headers: req.headers },
      (upstream) => {
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        upstream.pipe(res);
      },
    );
    forwarded.on("error", (error) => answer(res, 502, { __type: "StandInForwardError", message: error.message }));
    forwarded.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    setInstances(instances) {
      table = new Map(instances.map((instance) => [instance.instanceId, instance]));
    },
    calls,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
