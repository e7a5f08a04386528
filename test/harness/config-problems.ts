/** The problems loadServiceConfig names for an environment (none: []), for tests of the configuration's rules. */
import { loadServiceConfig, ServiceConfigError } from "../../platform/config";

export function configProblems(env: Record<string, string>): { variable: string; message: string }[] {
  try {
    loadServiceConfig(env);
  } catch (error) {
    if (error instanceof ServiceConfigError) return error.problems;
    throw error;
  }
  return [];
}
