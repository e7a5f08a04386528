/**
 * An EC2 stand-in on 127.0.0.1, in front of moto, for two things moto cannot do because it has no notion of them, each
 * answered as AWS does, per account (the caller's account from the STS stand-in's sessions, test/harness/sts-standin.ts):
 *
 * - Opt-in regions enabled per account. moto reports each opt-in region (ap-east-1, me-south-1, ...) as `not-opted-in`
 *   in every account, and has no way to enable one. In AWS, someone enables it per account; DescribeRegions then
 *   reports it `opted-in` there.
 * - Service control policies. moto does not evaluate them. In AWS, an SCP that denies an action in a region answers
 *   every call of it there with 403 UnauthorizedOperation, "... with an explicit deny in a service control policy".
 *
 * Every other call, and these calls for accounts and regions not configured here, go to moto unchanged. Tests point the
 * SDK at it with the standard AWS_ENDPOINT_URL_EC2.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { forwardRequest, readRequestBody, relayAnswer } from "./request-body";

export interface Ec2StandInOptions {
  motoUrl: string;
  /** The account of a session (its access key id); the STS stand-in's accountOf. */
  accountOf(accessKeyId: string | undefined): string | undefined;
  /** Per account: the opt-in regions it has enabled (every other opt-in region stays `not-opted-in`, as in moto). */
  regionsEnabled?: Record<string, readonly string[]>;
  /** Per account: actions (ec2:DescribeInstances) an SCP denies, per region. */
  scpDenies?: Record<string, { region: string; action: string }[]>;
}

export interface Ec2StandIn {
  url: string;
  /** Calls answered here rather than by moto. */
  answered: { action: string; accountId: string; region: string }[];
  stop(): Promise<void>;
}

const unauthorized = (accountId: string, action: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation. User: arn:aws:sts::${accountId}:assumed-role/caller/session is not authorized to perform: ${action} with an explicit deny in a service control policy</Message></Error></Errors><RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>`;

/** DescribeRegions as the account sees it: the opt-in regions it enabled are `opted-in` (and listed without AllRegions). */
function withOptIn(xml: string, enabled: ReadonlySet<string>): string {
  return xml.replace(/<item>([\s\S]*?)<\/item>/g, (item, inner: string) => {
    const name = /<regionName>([^<]+)<\/regionName>/.exec(inner)?.[1];
    if (!name || !enabled.has(name)) return item;
    const status = "<optInStatus>opted-in</optInStatus>";
    return /<optInStatus>/.test(inner) ? item.replace(/<optInStatus>[^<]*<\/optInStatus>/, status) : `<item>${inner}${status}</item>`;
  });
}

export async function startEc2StandIn(options: Ec2StandInOptions): Promise<Ec2StandIn> {
  const answered: Ec2StandIn["answered"] = [];
  const target = new URL(options.motoUrl);

  const server: Server = createServer(async (req, res) => {
    const body = await readRequestBody(req);
    const form = new URLSearchParams(body.toString());
    const action = form.get("Action") ?? "";
    const credential = /Credential=([^/]+)\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ""));
    const accountId = options.accountOf(credential?.[1]);
    const region = credential?.[2] ?? "us-east-1";
    const denied = accountId && options.scpDenies?.[accountId]?.some((deny) => deny.region === region && deny.action === `ec2:${action}`);
    if (accountId && denied) {
      answered.push({ action, accountId, region });
      res.writeHead(403, { "content-type": "text/xml" });
      res.end(unauthorized(accountId, `ec2:${action}`));
      return;
    }
    const enabled = accountId ? options.regionsEnabled?.[accountId] : undefined;
    // The platform asks with AllRegions=true (services/discovery/scanner.ts); only that form is answered per account.
    const perAccount = action === "DescribeRegions" && form.get("AllRegions") === "true" && enabled?.length;
    forwardRequest(target, req, body, (status, headers, text) => {
      let out = text;
      if (perAccount && status === 200) {
        answered.push({ action, accountId: accountId!, region });
        out = Buffer.from(withOptIn(text.toString(), new Set(enabled)));
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
