/**
 * What the Pulumi CLI and the plugins it starts (the AWS provider, the language host) may see of the service's
 * environment: only what they need to run and to reach AWS. The service's own secrets (CREDENTIALS_ENCRYPTION_KEY,
 * ADMIN_TOKEN, DATABASE_URL with its password, ...) are not among them. The engine's own variables (backend, passphrase,
 * PULUMI_HOME) are added per workspace (tenant-stack.ts engineEnv).
 *
 * The Automation API spawns the CLI with execa, which merges `process.env` under the variables it is given; Node's
 * spawn leaves out a variable whose value is undefined. So the workspace's variables name every other variable of
 * this process with the value undefined (cliProcessEnvironment), and the CLI starts with the allowlist only.
 */
import { isBaseVariable, pickEnvironment } from "../lib/child-environment";

/** Besides the base (lib/child-environment.ts): TLS trust (Go reads SSL_CERT_*) and proxies, in both spellings. */
const ALLOWED_NAMES = new Set([
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
]);

/**
 * Prefixes: PULUMI_* (the CLI's own settings; PULUMI_CONFIG_PASSPHRASE is left out, engineEnv passes the service's),
 * AWS_* (the provider's credential chain, profile, region, endpoints, web identity and container credentials), NODE_*
 * (the Node.js language host and a Node.js plugin: NODE_OPTIONS, NODE_EXTRA_CA_CERTS).
 */
const ALLOWED_PREFIXES = ["PULUMI_", "AWS_", "NODE_"];
const WITHHELD = new Set(["PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"]);

export function isCliVariable(name: string): boolean {
  if (WITHHELD.has(name)) return false;
  return isBaseVariable(name) || ALLOWED_NAMES.has(name) || ALLOWED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/**
 * The variables of `env` the CLI and its plugins get: the allowlist, plus `passThrough` (names an operator adds with
 * PULUMI_CLI_ENV_PASSTHROUGH, e.g. a provider's own setting).
 */
export function pickCliEnvironment(env: Readonly<Record<string, string | undefined>>, passThrough: readonly string[] = []): Record<string, string> {
  const extra = new Set(passThrough);
  return pickEnvironment(env, (name) => isCliVariable(name) || extra.has(name));
}

/**
 * The workspace variables that give a CLI process exactly `environment` plus `engine`: every other variable of this
 * process is named with the value undefined, so that execa's merge of process.env brings none of them.
 */
export function cliProcessEnvironment(
  environment: Readonly<Record<string, string>>,
  engine: Readonly<Record<string, string>>,
): Record<string, string> {
  const withheld: Record<string, undefined> = {};
  for (const name of Object.keys(process.env)) withheld[name] = undefined;
  // Typed as strings for the Automation API; the undefined entries are what keeps the rest out.
  return { ...withheld, ...environment, ...engine } as Record<string, string>;
}
