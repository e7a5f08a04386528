/**
 * Entry point of the stand-in `pulumi-resource-aws` (test/harness/bin/pulumi-resource-aws runs this with tsx).
 *
 * stdout belongs to the plugin protocol (the SDK prints the gRPC port there): never log to stdout here.
 *
 * `@pulumi/pulumi/provider`'s server answers Configure without looking at the request (it only says it accepts
 * secrets, resources and outputs) and the Provider interface has no configure hook. The server object is handed to
 * grpc-js's `Server.addService`, so we wrap that (on the very grpc-js instance the SDK loads) and put our own
 * Configure in front: it reads the request, assumes the role chain, then lets the SDK's Configure answer.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { StandInAwsProvider } from "./provider";
import type { Props } from "./values";

/**
 * What the engine handed this plugin, and the environment and arguments of the CLI that started it, recorded in
 * STANDIN_AWS_STATE_DIR/environ/<pid>.json (mode 600): tests check that no secret of the service reached either.
 */
function recordEnvironment(): void {
  const dir = process.env.STANDIN_AWS_STATE_DIR;
  if (!dir) return;
  const readProc = (file: string) => {
    try {
      return readFileSync(`/proc/${process.ppid}/${file}`, "utf8").split("\0").filter(Boolean);
    } catch {
      return [];
    }
  };
  const parentEnv = Object.fromEntries(readProc("environ").map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]));
  mkdirSync(join(dir, "environ"), { recursive: true });
  writeFileSync(
    join(dir, "environ", `${process.pid}.json`),
    JSON.stringify({ pid: process.pid, ppid: process.ppid, env: { ...process.env }, parentArgs: readProc("cmdline"), parentEnv }),
    { mode: 0o600 },
  );
}
recordEnvironment();

// Keep the AWS SDK's "Node 20 support ends" notice out of the engine's diagnostics.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

interface ConfigureCall {
  request: {
    getVariablesMap(): { forEach(fn: (value: string, key: string) => void): void };
    getArgs(): { toJavaScript(): Props } | undefined;
  };
}
type Callback = (error: unknown, value?: unknown) => void;
type Implementation = Record<string, unknown> & { configure?: (call: ConfigureCall, callback: Callback) => void };

const require = createRequire(import.meta.url);
const providerModule = require("@pulumi/pulumi/provider") as typeof import("@pulumi/pulumi/provider");
const grpc = createRequire(require.resolve("@pulumi/pulumi/provider"))("@grpc/grpc-js") as {
  Server: { prototype: { addService(service: unknown, implementation: Implementation): void } };
  status: { FAILED_PRECONDITION: number; UNKNOWN: number };
};

const provider = new StandInAwsProvider();

const addService = grpc.Server.prototype.addService;
grpc.Server.prototype.addService = function (service, implementation) {
  const sdkConfigure = implementation.configure?.bind(implementation);
  if (sdkConfigure) {
    implementation.configure = (call, callback) => {
      const variables: Record<string, string> = {};
      call.request.getVariablesMap().forEach((value, key) => {
        variables[key] = value;
      });
      const args = call.request.getArgs()?.toJavaScript() ?? {};
      provider.configure(variables, args).then(
        () => sdkConfigure(call, callback),
        (error: unknown) => callback({ code: grpc.status.UNKNOWN, details: error instanceof Error ? error.message : String(error) }),
      );
    };
  }
  return addService.call(this, service, implementation);
};

await providerModule.main(provider, process.argv.slice(2));
