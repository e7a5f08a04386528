/** What each resource type of the stand-in provider implements. Values here are plain: secrets already revealed. */
import { createHash } from "node:crypto";
import type { CheckFailure } from "@pulumi/pulumi/provider";
import { awsMessage, type AwsContext } from "./config";
import type { Props } from "./values";

export interface ResourceHandler {
  /** The Pulumi type token, e.g. `aws:iam/role:Role`. */
  token: string;
  /** Input properties this stand-in implements (names exactly as in @pulumi/aws 7). Others are refused by check. */
  inputs: readonly string[];
  /** Inputs whose change forces replacement. */
  replaceOnChanges: readonly string[];
  /** Optional+computed inputs: when absent from the new inputs they are left as they are (no diff). */
  computedInputs?: readonly string[];
  /** Inputs holding JSON text, compared by meaning. */
  jsonInputs?: readonly string[];
  /** Defaults and autonaming, applied by check to the (still wrapped) inputs. */
  defaults?(news: Props, olds: Props, urn: string): Props;
  validate?(news: Props): CheckFailure[];
  create(ctx: AwsContext, inputs: Props, urn: string): Promise<{ id: string; outs: Props }>;
  /** `undefined`: the resource is gone. */
  read(ctx: AwsContext, id: string, state: Props): Promise<Props | undefined>;
  update(ctx: AwsContext, id: string, olds: Props, news: Props): Promise<Props>;
  delete(ctx: AwsContext, id: string, state: Props): Promise<void>;
}

/** Wraps an AWS error the way the real provider reports it: `creating IAM Role (x): ... EntityAlreadyExists: ...`. */
export function awsFailure(action: string, error: unknown): Error {
  return new Error(`${action}: ${awsMessage(error)}`);
}

/** The resource's name from its URN (`urn:pulumi:stack::project::type::name`). */
export function urnName(urn: string): string {
  return urn.split("::").at(-1) ?? "resource";
}

/** `urn:pulumi:s::p::parent$aws:iam/role:Role::n` → `aws:iam/role:Role`. */
export function urnType(urn: string): string {
  const qualified = urn.split("::")[2] ?? "";
  return qualified.split("$").at(-1) ?? qualified;
}

/**
 * Autonaming like the bridged provider (`<resource name>-<7 chars>`), but derived from the URN so preview, update
 * plans and up agree on it.
 */
export function autoName(urn: string, maxLength = 64): string {
  const suffix = createHash("sha256").update(urn).digest("hex").slice(0, 7);
  return `${urnName(urn).slice(0, maxLength - 8)}-${suffix}`;
}

/** Removes undefined entries so outputs serialize cleanly. */
export function compact(props: Props): Props {
  return Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined));
}

export function mergeTags(defaultTags: Record<string, string> | undefined, tags: unknown): Record<string, string> {
  return { ...(defaultTags ?? {}), ...((tags as Record<string, string> | undefined) ?? {}) };
}
