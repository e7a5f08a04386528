/**
 * The stand-in `pulumi-resource-aws`: a `@pulumi/pulumi/provider` Provider serving the handful of AWS resource
 * types the tenant program uses, backed by the moto server (AWS_ENDPOINT_URL).
 *
 * The resource handlers see plain values; this class deals with the wire format (values.ts): it reveals secrets and
 * resource references before calling a handler, treats unknowns in diff, and marks outputs secret where the inputs
 * were.
 */
import { createRequire } from "node:module";
import type { CheckFailure, CheckResult, CreateResult, DiffResult, Provider, ReadResult, UpdateResult } from "@pulumi/pulumi/provider";
import { association } from "./association";
import { connect, parseConfig, type AwsContext } from "./config";
import { accessEntry, accessPolicyAssociation } from "./eks";
import { role, rolePolicy, rolePolicyAttachment } from "./iam";
import { urnType, type ResourceHandler } from "./resource";
import { serviceSetting } from "./service-setting";
import { document, parameter } from "./ssm";
import { annotateSecrets, containsUnknowns, deepEqual, jsonEqual, reveal, type Props } from "./values";

const HANDLERS: ResourceHandler[] = [
  role,
  rolePolicy,
  rolePolicyAttachment,
  parameter,
  document,
  association,
  serviceSetting,
  accessEntry,
  accessPolicyAssociation,
];

/**
 * The version this plugin reports: the one the installed @pulumi/aws SDK asks the engine for, so the engine's
 * version bookkeeping (state, `pulumi plugin ls`) matches what a real install would show.
 */
export const AWS_PLUGIN_VERSION: string = (createRequire(import.meta.url)("@pulumi/aws/package.json") as { version: string }).version;

export class StandInAwsProvider implements Provider {
  readonly version = AWS_PLUGIN_VERSION;
  private context?: Promise<AwsContext>;
  private readonly handlers = new Map(HANDLERS.map((h) => [h.token, h]));

  /** Called from main.ts with the ConfigureRequest (the SDK's server does not pass it on). Rejects like the real provider would. */
  configure(variables: Record<string, string>, args: Props): Promise<AwsContext> {
    const context = (async () => connect(parseConfig(variables, args)))();
    context.catch(() => undefined); // reported by the Configure call itself
    this.context = context;
    return context;
  }

  private aws(): Promise<AwsContext> {
    // Without a Configure (never the case with the engine), fall back to the environment alone.
    return (this.context ??= this.configure({}, {}));
  }

  private handler(urn: string): ResourceHandler {
    const token = urnType(urn);
    const handler = this.handlers.get(token);
    if (!handler) {
      throw new Error(
        `resource type ${token} is not implemented by the test stand-in pulumi-resource-aws ` +
          `(test/harness/aws-provider); supported: ${[...this.handlers.keys()].join(", ")}`,
      );
    }
    return handler;
  }

  async check(urn: string, olds: Props, news: Props): Promise<CheckResult> {
    const handler = this.handler(urn);
    const failures: CheckFailure[] = [];
    for (const key of Object.keys(news)) {
      if (key === "__defaults") continue;
      if (!handler.inputs.includes(key) && news[key] !== undefined && news[key] !== null) {
        failures.push({
          property: key,
          reason: `not supported by the test stand-in provider (test/harness/aws-provider); supported: ${handler.inputs.join(", ")}`,
        });
      }
    }
    // Defaults are plain values added next to the (possibly secret or unknown) inputs, which are passed on untouched
    // so the engine keeps their secretness.
    const inputs = handler.defaults ? handler.defaults(news, olds ?? {}, urn) : news;
    failures.push(...(handler.validate?.(reveal(inputs)) ?? []));
    return { inputs, failures };
  }

  async diff(_id: string, urn: string, olds: Props, news: Props): Promise<DiffResult> {
    const handler = this.handler(urn);
    const changed: string[] = [];
    for (const key of handler.inputs) {
      const next = news[key];
      if (next === undefined && handler.computedInputs?.includes(key)) continue;
      if (containsUnknowns(next)) {
        changed.push(key);
        continue;
      }
      const equal = handler.jsonInputs?.includes(key) ? jsonEqual : deepEqual;
      if (!equal(reveal(olds[key]), reveal(next))) changed.push(key);
    }
    const replaces = changed.filter((key) => handler.replaceOnChanges.includes(key));
    return { changes: changed.length > 0, replaces, deleteBeforeReplace: false };
  }

  async create(urn: string, inputs: Props): Promise<CreateResult> {
    const handler = this.handler(urn);
    const { id, outs } = await handler.create(await this.aws(), reveal(inputs), urn);
    return { id, outs: annotateSecrets(outs, inputs) };
  }

  async read(id: string, urn: string, props: Props = {}): Promise<ReadResult> {
    const handler = this.handler(urn);
    const live = await handler.read(await this.aws(), id, reveal(props));
    // An empty id tells the engine the resource is gone.
    if (!live) return { id: "", props: {} };
    return { id, props: annotateSecrets(live, props) };
  }

  async update(id: string, urn: string, olds: Props, news: Props): Promise<UpdateResult> {
    const handler = this.handler(urn);
    const outs = await handler.update(await this.aws(), id, reveal(olds), reveal(news));
    return { outs: annotateSecrets(outs, news) };
  }

  async delete(id: string, urn: string, props: Props): Promise<void> {
    await this.handler(urn).delete(await this.aws(), id, reveal(props));
  }
}
