/**
 * IAM decisions, by @cloud-copilot/iam-simulate: AWS's evaluation logic (explicit Deny wins, then an Allow is needed;
 * permissions boundaries; trust policies; every condition operator and policy variable), and a check of each request
 * against AWS's service reference (the action exists, the ARN is one of its resource types, the condition keys apply
 * to it). A policy or request it finds invalid is an IamSimulationError, not a guess.
 *
 * Tests only: the library is AGPL-3.0-or-later, so it is a devDependency and nothing the service ships imports it. It is
 * imported on first use (about 20 MiB and a few hundred milliseconds).
 */
import type { Simulation } from "@cloud-copilot/iam-simulate";
import type { IamRequest } from "../../programs/tenant/policy-document";

export type IamDecision = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

/** Who makes a request, and the policies attached to it. */
export interface IamPrincipal {
  arn: string;
  /** Identity policies (JSON policy documents). */
  policies: readonly object[];
  boundary?: object;
}

export class IamSimulationError extends Error {
  override readonly name = "IamSimulationError";
}

let simulator: Promise<typeof import("@cloud-copilot/iam-simulate")> | undefined;

const accountOf = (arn: string) => /^arn:[^:]*:[^:]*:[^:]*:(\d{12}):/.exec(arn)?.[1];

async function simulate(simulation: Simulation): Promise<IamDecision> {
  const { runSimulation, runUnsafeSimulation } = await (simulator ??= import("@cloud-copilot/iam-simulate"));
  const response = await runSimulation(simulation, {});
  const { resource } = simulation.request.resource;
  if (response.resultType === "error" && response.errors.message === "no.resource.types" && /^arn:[^:]*:[^:]*:[^:]+::/.test(resource)) {
    // The library's resource types need an account in the ARN, and AWS-owned resources (SSM's AWS-* documents,
    // `arn:aws:ssm:<region>::document/AWS-RunShellScript`) have none: those run without its request validation.
    return runUnsafeSimulation(simulation, {});
  }
  if (response.resultType === "error") {
    throw new IamSimulationError(`${simulation.request.action} on ${resource}: ${JSON.stringify(response.errors)}`);
  }
  const ignored =
    response.resultType === "single" ? response.result.ignoredContextKeys : response.results.flatMap((result) => result.ignoredContextKeys);
  if (ignored && ignored.length > 0) {
    throw new IamSimulationError(`${simulation.request.action} on ${resource}: AWS does not send ${ignored.join(", ")} with this call`);
  }
  return response.overallResult;
}

/**
 * The decision of `principal`'s own policies on a request (no resource policy). The simulator takes one resource per
 * request; AWS authorizes some calls against several (SendCommand: the document and each instance; an association
 * call: the association and its document) and allows them only when every one is allowed.
 */
export async function decide(principal: IamPrincipal, request: IamRequest): Promise<IamDecision> {
  if (request.resources.length === 0) throw new IamSimulationError(`${request.action}: no resource`);
  const decisions = await Promise.all(
    request.resources.map((resource) =>
      simulate({
        request: {
          principal: principal.arn,
          action: request.action,
          resource: { resource, accountId: accountOf(resource) ?? accountOf(principal.arn)! },
          contextVariables: { ...request.context },
        },
        identityPolicies: principal.policies.map((policy, index) => ({ name: `policy-${index}`, policy })),
        permissionBoundaryPolicies: principal.boundary ? [{ name: "boundary", policy: principal.boundary }] : undefined,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
      }),
    ),
  );
  if (decisions.includes("ExplicitlyDenied")) return "ExplicitlyDenied";
  return decisions.every((decision) => decision === "Allowed") ? "Allowed" : "ImplicitlyDenied";
}

export async function isAllowed(principal: IamPrincipal, request: IamRequest): Promise<boolean> {
  return (await decide(principal, request)) === "Allowed";
}

/**
 * Whether a role's trust policy lets `principal` assume it. The caller's own permissions are not the question here: it
 * is given an identity policy allowing sts:AssumeRole on the role (AWS wants both for a cross-account call).
 */
export async function trustAdmits(
  trust: object,
  request: { roleArn: string; principal: string; context?: Readonly<Record<string, string>> },
): Promise<boolean> {
  const decision = await simulate({
    request: {
      principal: request.principal,
      action: "sts:AssumeRole",
      resource: { resource: request.roleArn, accountId: accountOf(request.roleArn)! },
      contextVariables: { ...request.context },
    },
    identityPolicies: [
      { name: "caller", policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Resource: request.roleArn }] } },
    ],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: trust,
  });
  return decision === "Allowed";
}
