import { z } from "zod";

/** How stack operations run: where state and stack config live, which CLI, which secrets provider. */
export const automationSettingsSchema = z.object({
  /** Folder holding Pulumi.yaml; stack config files are written to its stackConfigDir (stacks/). */
  projectDir: z.string().min(1),
  /** State backend: postgres:// (the service's default, automation/state-backend.ts), file://, s3://, or https://api.pulumi.com. */
  backendUrl: z.string().min(1),
  /** "passphrase" or a KMS URL such as awskms://alias/mini-xdr. */
  secretsProvider: z.string().regex(/^(passphrase|awskms:\/\/.+)$/, "must be passphrase or awskms://..."),
  passphrase: z.string().min(1).optional(),
  /** Folder whose bin/ holds the pinned CLI (the project's .tools); PATH when absent. */
  pulumiRoot: z.string().optional(),
  pulumiHome: z.string().optional(),
  /**
   * All the CLI and its plugins see of this process's environment besides the engine's own variables
   * (cli-environment.ts pickCliEnvironment; the service always sets it). Absent: the whole environment (tests, scripts).
   */
  environment: z.record(z.string(), z.string()).optional(),
});

export type AutomationSettings = z.infer<typeof automationSettingsSchema>;
