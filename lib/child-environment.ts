/**
 * What a child process of the service may see of its environment. Children get an allowlist, never the whole
 * environment: the service's own secrets (ADMIN_TOKEN, CREDENTIALS_ENCRYPTION_KEY, DATABASE_URL, ...) stay in this
 * process. Each kind of child adds what it needs to the base (automation/cli-environment.ts for the pulumi CLI).
 */

/** How to find programs, who and where the process is, locale, time zone, temp dirs. */
const BASE_NAMES = new Set(["PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TMP", "TEMP", "LANG", "LANGUAGE", "TZ"]);

export function isBaseVariable(name: string): boolean {
  return BASE_NAMES.has(name) || name.startsWith("LC_");
}

/** The variables of `env` that `allowed` admits. */
export function pickEnvironment(env: Readonly<Record<string, string | undefined>>, allowed: (name: string) => boolean): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined && allowed(name)) picked[name] = value;
  return picked;
}
