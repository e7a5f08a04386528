import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { EngineEvent, OpMap, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { TENANT_CONFIG_KEYS, toStackConfigEntries, type TenantConfigInput } from "../programs/tenant/config";
import { cliProcessEnvironment } from "./cli-environment";
import { deferClosureSerializerDeps } from "./deferred-closure-deps";
import { EngineFailureError, StackBusyError, StackNotFoundError, ToolchainMissingError } from "./errors";
import type { AutomationSettings } from "./settings";
import { cliLauncherRoot } from "./cli-launcher";
import { STACK_MARKER_VARIABLE, stackNameFor } from "./stack-name";

export const PROJECT_NAME = "mini-xdr-tenant";

type AutomationSdk = typeof import("@pulumi/pulumi/automation");
let automationSdk: AutomationSdk | undefined;
let tenantProgramModule: Promise<typeof import("../programs/tenant/program")> | undefined;

/**
 * The Automation API (about 35 MiB resident with its gRPC and protobuf code, once the closure serializer's TypeScript
 * and arborist are deferred: deferred-closure-deps.ts) and the tenant program (with @pulumi/aws, about 15 MiB) are
 * loaded on first use, not at start-up: an API replica that never runs a stack never pays for them.
 */
async function loadAutomationSdk(): Promise<AutomationSdk> {
  deferClosureSerializerDeps();
  return (automationSdk ??= await import("@pulumi/pulumi/automation"));
}

export interface ResourceChange {
  urn: string;
  type: string;
  op: string;
  diffs: string[];
}

export interface OperationResult {
  stackName: string;
  changeSummary: Partial<Record<string, number>>;
  resourceChanges: ResourceChange[];
  /** Stack outputs with secret values left out. */
  outputs: Record<string, unknown>;
  /** The saved update plan (preview with `savePlan`). */
  planPath?: string;
}

export interface OperationOptions {
  onEvent?: (event: EngineEvent) => void;
  signal?: AbortSignal;
}

const checkedClis = new Map<string, Promise<PulumiCommand>>();

/**
 * The pinned CLI, checked (`pulumi version`) once per process and root: later calls get the same PulumiCommand, so
 * runs skip the check.
 */
export function resolvePulumiCli(settings: AutomationSettings): Promise<PulumiCommand> {
  const root = settings.pulumiRoot ?? "";
  let checked = checkedClis.get(root);
  if (!checked) {
    checked = (async () => {
      const { PulumiCommand } = await loadAutomationSdk();
      try {
        // Through the launcher: every command in a session of its own (cli-launcher.ts).
        return await PulumiCommand.get({ root: await cliLauncherRoot(settings), version: undefined, skipVersionCheck: false });
      } catch (error) {
        throw new ToolchainMissingError(error instanceof Error ? error.message.split("\n")[0]! : String(error));
      }
    })();
    checked.catch(() => checkedClis.delete(root));
    checkedClis.set(root, checked);
  }
  return checked;
}

/** The start-up check of a worker, without loading the Automation API: the CLI runs and says its version. */
export async function checkPulumiCli(settings: AutomationSettings): Promise<string> {
  const bin = settings.pulumiRoot ? join(settings.pulumiRoot, "bin", "pulumi") : "pulumi";
  try {
    const { stdout } = await promisify(execFile)(bin, ["version"], {
      env: { ...(settings.environment ?? process.env), PULUMI_SKIP_UPDATE_CHECK: "true" },
    });
    return stdout.trim();
  } catch (error) {
    throw new ToolchainMissingError(`could not run ${bin}: ${error instanceof Error ? error.message.split("\n")[0]! : String(error)}`);
  }
}

function engineEnv(settings: AutomationSettings, stackName: string, experimental: boolean): Record<string, string> {
  if (settings.backendUrl.startsWith("file://")) mkdirSync(settings.backendUrl.slice("file://".length), { recursive: true });
  const env: Record<string, string> = {
    PULUMI_BACKEND_URL: settings.backendUrl,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    // Replicas share the state backend, not the project dir. Opening an existing stack writes no secrets-manager
    // state into this replica's stack config file, and without this the first command that needs one (`config
    // set-all`) would make a new one (a new passphrase salt, a new KMS data key) instead of the checkpoint's: a plan
    // another replica saved, whose secrets are sealed by the stack's secrets manager, would then not decrypt here.
    // With it, the CLI takes the checkpoint's secrets manager (kept there since `stack init`) and saves it in the
    // config file (pkg/cmd/pulumi/stack/secrets.go, SecretsManagerLoader.FallbackToState).
    PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER: "true",
    // Recovery, timeouts and cancel find the operation's processes, plugins included, by it (services/run/orphans.ts).
    [STACK_MARKER_VARIABLE]: stackName,
  };
  if (settings.passphrase) env.PULUMI_CONFIG_PASSPHRASE = settings.passphrase;
  // `up --plan` (applying an approved preview's update plan) is behind the CLI's experimental flag.
  if (experimental) env.PULUMI_EXPERIMENTAL = "true";
  if (settings.pulumiHome) env.PULUMI_HOME = settings.pulumiHome;
  return settings.environment ? cliProcessEnvironment(settings.environment, env) : env;
}

/**
 * Opens a tenant's stack by its name (stackNameFor); `create` makes it when missing, otherwise a missing stack is
 * StackNotFoundError.
 * `updatePlans`: the stack will apply a saved update plan (enables the CLI's experimental `--plan`).
 */
export async function openTenantStack(
  settings: AutomationSettings,
  stackName: string,
  { create, updatePlans = false, cli }: { create: boolean; updatePlans?: boolean; cli?: PulumiCommand },
): Promise<Stack> {
  const { LocalWorkspace } = await loadAutomationSdk();
  const { tenantProgram } = await (tenantProgramModule ??= import("../programs/tenant/program"));
  const workspaceOptions = {
    workDir: settings.projectDir,
    pulumiCommand: cli ?? (await resolvePulumiCli(settings)),
    envVars: engineEnv(settings, stackName, updatePlans),
    pulumiHome: settings.pulumiHome,
    secretsProvider: settings.secretsProvider,
  };
  const args = { stackName, projectName: PROJECT_NAME, program: tenantProgram };
  try {
    return create ? await LocalWorkspace.createOrSelectStack(args, workspaceOptions) : await LocalWorkspace.selectStack(args, workspaceOptions);
  } catch (error) {
    throw translateError(error, stackName, "open");
  }
}

/**
 * Writes the tenant's config into the stack (secrets encrypted by the stack's secrets provider). The current config
 * is read first and nothing is written when it already matches: most runs of a tenant change no setting, and each
 * write is a CLI call that re-encrypts the secrets.
 */
export async function configureTenantStack(stack: Stack, config: TenantConfigInput): Promise<void> {
  const entries = toStackConfigEntries(config);
  const current = await stack.getAllConfig();
  const present = new Set(entries.map((entry) => entry.key));
  const changed = entries.filter((entry) => {
    const existing = current[`${PROJECT_NAME}:${entry.key}`];
    return existing?.value !== entry.value || (existing.secret ?? false) !== entry.secret;
  });
  if (changed.length > 0) {
    await stack.setAllConfig(
      Object.fromEntries(changed.map((entry) => [`${PROJECT_NAME}:${entry.key}`, { value: entry.value, secret: entry.secret }])),
    );
  }
  const stale = TENANT_CONFIG_KEYS.filter((key) => !present.has(key) && `${PROJECT_NAME}:${key}` in current);
  if (stale.length > 0) await stack.removeAllConfig(stale.map((key) => `${PROJECT_NAME}:${key}`));
}

interface WarmStack {
  stack: Stack;
  /** Digest of the config entries written, and of the stack's config file right after writing them. */
  configDigest: string;
  fileDigest: string;
}

/** Stacks this process opened and configured, by stack name and update-plan mode; bounded, oldest dropped first. */
const warmStacks = new Map<string, WarmStack>();
const WARM_STACKS_MAX = 1000;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

async function configFileDigest(settings: AutomationSettings, stackName: string): Promise<string | undefined> {
  const text = await readFile(join(settings.projectDir, "stacks", `Pulumi.${stackName}.yaml`), "utf8").catch(() => undefined);
  return text === undefined ? undefined : sha256(text);
}

function forgetWarmStack(stackName: string): void {
  for (const [key, warm] of warmStacks) if (warm.stack.name === stackName) warmStacks.delete(key);
}

/**
 * openTenantStack (create when missing) + configureTenantStack, kept warm: when this process already opened the
 * stack and wrote this very config, and the stack's config file is still the one it wrote (no other process changed or
 * removed it), the open stack is reused without a CLI call (`stack select`, `config --json`). Otherwise it is opened
 * and configured as usual.
 */
export async function openConfiguredTenantStack(
  settings: AutomationSettings,
  config: TenantConfigInput,
  { updatePlans = false, cli, stackName = stackNameFor(config.tenantSlug) }: { updatePlans?: boolean; cli?: PulumiCommand; stackName?: string } = {},
): Promise<Stack> {
  const key = sha256(JSON.stringify([settings, stackName, updatePlans]));
  const configDigest = sha256(JSON.stringify(toStackConfigEntries(config)));
  const warm = warmStacks.get(key);
  if (warm && warm.configDigest === configDigest && warm.fileDigest === (await configFileDigest(settings, stackName))) return warm.stack;
  warmStacks.delete(key);
  const stack = await openTenantStack(settings, stackName, { create: true, updatePlans, cli });
  await configureTenantStack(stack, config);
  const fileDigest = await configFileDigest(settings, stackName);
  if (fileDigest !== undefined) {
    if (warmStacks.size >= WARM_STACKS_MAX) warmStacks.delete(warmStacks.keys().next().value!);
    warmStacks.set(key, { stack, configDigest, fileDigest });
  }
  return stack;
}

function translateError(error: unknown, stackName: string, operation: string, diagnostics: string[] = []): Error {
  // Errors only come from a stack, so the SDK is loaded by now.
  const { CommandError, ConcurrentUpdateError, StackNotFoundError: PulumiStackNotFoundError } = automationSdk!;
  if (error instanceof ConcurrentUpdateError) return new StackBusyError(stackName);
  if (error instanceof PulumiStackNotFoundError || (error instanceof CommandError && /no stack named .* found/.test(error.message))) {
    forgetWarmStack(stackName);
    return new StackNotFoundError(stackName);
  }
  if (error instanceof CommandError) {
    const message = error.message;
    if (message.includes("the stack is currently locked by")) return new StackBusyError(stackName);
    if (/no stack named .* found/.test(message)) return new StackNotFoundError(stackName);
    const fromStderr = diagnostics.length > 0 ? diagnostics : engineErrorLines(message);
    return new EngineFailureError(stackName, operation, fromStderr);
  }
  return error instanceof Error ? error : new Error(String(error));
}

function engineErrorLines(message: string): string[] {
  return message
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith("error:"))
    .map((line) => line.slice("error:".length).trim());
}

/** Collects what the engine reports while it runs: per-resource changes and error diagnostics. */
function eventRecorder(onEvent?: (event: EngineEvent) => void) {
  const resourceChanges: ResourceChange[] = [];
  const diagnostics: string[] = [];
  return {
    resourceChanges,
    diagnostics,
    onEvent(event: EngineEvent) {
      const pre = event.resourcePreEvent?.metadata;
      if (pre && pre.type !== "pulumi:pulumi:Stack") {
        resourceChanges.push({ urn: pre.urn, type: pre.type, op: pre.op, diffs: pre.diffs ?? [] });
      }
      const diagnostic = event.diagnosticEvent;
      if (diagnostic && diagnostic.severity === "error" && !diagnostic.message.includes("update failed")) {
        diagnostics.push(diagnostic.message.trim());
      }
      onEvent?.(event);
    },
  };
}

type StackOutputs = Awaited<ReturnType<Stack["outputs"]>>;

function withoutSecrets(outputs: StackOutputs): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(outputs)
      .filter(([, output]) => !output.secret && output.value !== undefined)
      .map(([key, output]) => [key, output.value]),
  );
}

function summaryOf(changeSummary: OpMap | undefined): Partial<Record<string, number>> {
  return { ...(changeSummary ?? {}) };
}

export async function previewTenantStack(stack: Stack, options: OperationOptions & { savePlanTo?: string } = {}): Promise<OperationResult> {
  const recorder = eventRecorder(options.onEvent);
  try {
    const result = await stack.preview({
      onEvent: recorder.onEvent,
      signal: options.signal,
      plan: options.savePlanTo,
      diff: false,
    });
    return {
      stackName: stack.name,
      changeSummary: summaryOf(result.changeSummary),
      resourceChanges: recorder.resourceChanges,
      outputs: {},
      planPath: options.savePlanTo,
    };
  } catch (error) {
    throw translateError(error, stack.name, "preview", recorder.diagnostics);
  }
}

/** What one resource's refresh would change in the state: the cloud differs from the checkpoint. */
export interface DriftedResource {
  urn: string;
  type: string;
  /** update: properties differ; delete: the resource is gone from the cloud. */
  op: string;
  /** Property paths that differ (empty for a resource that is gone). */
  properties: string[];
}

/**
 * A drift check: `pulumi refresh --preview-only` (Automation API previewRefresh). Reads every resource back from the
 * cloud and reports what a refresh would change, without changing the state.
 */
export async function driftCheckTenantStack(stack: Stack, options: OperationOptions = {}): Promise<OperationResult & { drifted: DriftedResource[] }> {
  const recorder = eventRecorder(options.onEvent);
  const drifted: DriftedResource[] = [];
  try {
    const result = await stack.previewRefresh({
      onEvent: (event) => {
        recorder.onEvent(event);
        const found = driftedResourceOf(event);
        if (found) drifted.push(found);
      },
      signal: options.signal,
    });
    return {
      stackName: stack.name,
      changeSummary: summaryOf(result.changeSummary),
      resourceChanges: recorder.resourceChanges,
      outputs: {},
      drifted,
    };
  } catch (error) {
    throw translateError(error, stack.name, "refresh --preview-only", recorder.diagnostics);
  }
}

/**
 * A refresh step's outputs event naming a resource whose cloud state differs (op update) or is gone (op delete).
 * The engine gives no property diff for refresh steps, so the properties are found by comparing the old and new
 * outputs; secret values arrive masked, so a change only inside secrets names the secret properties.
 */
export function driftedResourceOf(event: EngineEvent): DriftedResource | undefined {
  const metadata = event.resOutputsEvent?.metadata;
  if (!metadata || metadata.type === "pulumi:pulumi:Stack" || metadata.type.startsWith("pulumi:providers:")) return undefined;
  if (metadata.op !== "update" && metadata.op !== "delete") return undefined;
  if (metadata.op === "delete" || !metadata.new) return { urn: metadata.urn, type: metadata.type, op: "delete", properties: [] };
  const properties = changedProperties(metadata.old?.outputs ?? {}, metadata.new.outputs ?? {});
  return { urn: metadata.urn, type: metadata.type, op: "update", properties };
}

const isMaskedSecret = (value: unknown) =>
  typeof value === "object" && value !== null && (value as Record<string, unknown>).ciphertext === "[secret]";

export function changedProperties(olds: Record<string, unknown>, news: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(olds), ...Object.keys(news)])].sort();
  const differing = keys.filter((key) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
  if (differing.length > 0) return differing;
  return keys.filter((key) => isMaskedSecret(olds[key]) && isMaskedSecret(news[key]));
}

type Operation = "up" | "refresh" | "destroy";

/** Runs an update-kind operation with event recording and typed errors. */
async function runUpdate(
  stack: Stack,
  operation: Operation,
  options: OperationOptions & { plan?: string; refresh?: boolean },
): Promise<OperationResult> {
  const recorder = eventRecorder(options.onEvent);
  const common = { onEvent: recorder.onEvent, signal: options.signal };
  try {
    // `up` already reads the outputs (with their secret flags); refresh does not.
    const { summary, outputs } =
      operation === "up"
        ? await stack.up({ ...common, plan: options.plan, refresh: options.refresh })
        : operation === "refresh"
          ? { ...(await stack.refresh(common)), outputs: await stack.outputs() }
          : { ...(await stack.destroy(common)), outputs: {} };
    return {
      stackName: stack.name,
      changeSummary: summaryOf(summary.resourceChanges),
      resourceChanges: recorder.resourceChanges,
      outputs: withoutSecrets(outputs),
    };
  } catch (error) {
    throw translateError(error, stack.name, operation, recorder.diagnostics);
  }
}

/** `refresh`: read the cloud first, so resources changed outside the stack are brought back (drift remediation). */
export const upTenantStack = (stack: Stack, options: OperationOptions & { plan?: string; refresh?: boolean } = {}) => runUpdate(stack, "up", options);
export const refreshTenantStack = (stack: Stack, options: OperationOptions = {}) => runUpdate(stack, "refresh", options);
export const destroyTenantStack = (stack: Stack, options: OperationOptions = {}) => runUpdate(stack, "destroy", options);

/** Clears the lock an interrupted operation left behind. */
export async function cancelTenantStack(stack: Stack): Promise<void> {
  try {
    await stack.cancel();
  } catch (error) {
    throw translateError(error, stack.name, "cancel");
  }
}

export interface DroppedOperation {
  /** create, update, delete, read, ... */
  type: string;
  urn: string;
}

/**
 * Drops the checkpoint's pending operations (resources an interrupted operation had started on), so the next
 * operation can proceed, and says which they were: a pending create may have happened in the cloud, and a resource
 * with a fixed name then has to be imported or deleted before the next `up` can create it.
 */
export async function clearPendingOperations(stack: Stack): Promise<DroppedOperation[]> {
  try {
    const state = await stack.exportStack();
    const deployment = state.deployment as { pending_operations?: { type?: string; resource?: { urn?: string } }[] } | undefined;
    const dropped = (deployment?.pending_operations ?? []).map((operation) => ({
      type: operation.type ?? "unknown",
      urn: operation.resource?.urn ?? "unknown",
    }));
    if (dropped.length > 0) {
      delete deployment!.pending_operations;
      await stack.importStack(state);
    }
    return dropped;
  } catch (error) {
    throw translateError(error, stack.name, "clear pending operations");
  }
}

/** Removes the stack (its state and its config file); the stack must hold no resources. */
export async function removeTenantStack(stack: Stack): Promise<void> {
  forgetWarmStack(stack.name);
  try {
    await stack.workspace.removeStack(stack.name);
  } catch (error) {
    throw translateError(error, stack.name, "remove");
  }
}
