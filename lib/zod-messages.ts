/**
 * Messages for zod's generic issues that say what was expected and what came ("must be a string, got number"; "is
 * required" only when the value is missing). Installed once as zod's global error map by `useReadableZodMessages()`;
 * messages a schema sets itself take precedence.
 */
import { z } from "zod";

/** The JSON type of a value, as a client would name it. */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

const withArticle = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);

type RawIssue = z.core.$ZodRawIssue;

export function readableIssueMessage(issue: RawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type": {
      if (issue.input === undefined) return "is required";
      const expected = issue.expected === "int" ? "integer" : String(issue.expected);
      return `must be ${withArticle(expected)}, got ${jsonTypeOf(issue.input)}`;
    }
    case "invalid_value":
      return `must be one of ${issue.values.map((value) => JSON.stringify(value)).join(", ")}`;
    case "too_small":
      if (issue.origin === "string") return `must be at least ${issue.minimum} character${issue.minimum === 1 ? "" : "s"} long`;
      if (issue.origin === "array") return `must list at least ${issue.minimum} item${issue.minimum === 1 ? "" : "s"}`;
      return `must be ${issue.inclusive === false ? "greater than" : "at least"} ${issue.minimum}`;
    case "too_big":
      if (issue.origin === "string") return `must be at most ${issue.maximum} characters long`;
      if (issue.origin === "array") return `must list at most ${issue.maximum} items`;
      return `must be ${issue.inclusive === false ? "less than" : "at most"} ${issue.maximum}`;
    case "unrecognized_keys":
      return "is not a known field";
    default:
      return undefined;
  }
}

let installed = false;

/** Makes readableIssueMessage zod's global error map (idempotent). */
export function useReadableZodMessages(): void {
  if (installed) return;
  z.config({ customError: readableIssueMessage });
  installed = true;
}
