/**
 * Display names (tenant, token, ...): shown to operators in the console and in logs, so they may hold no Unicode
 * control (Cc) or format (Cf) character: U+202E RIGHT-TO-LEFT OVERRIDE would reverse what an operator reads, a
 * zero-width space would make two names look alike, a newline would forge a log line. White space at either end
 * is refused too (not trimmed: what is stored is what was sent).
 *
 * The rule is /\p{Cc}|\p{Cf}/u. The OpenAPI document states it as a `pattern`, which clients and the fuzzer read with
 * their own regex engines (Python's has no \p{...}), so the pattern spells the same characters out as ranges of
 * literal code points, computed from the rule itself at start-up: the two cannot disagree.
 */
import { z } from "zod";

const FORBIDDEN = /\p{Cc}|\p{Cf}/u;
const FORBIDDEN_AT_EDGE = /\p{Cc}|\p{Cf}|\p{White_Space}/u;

/** The code points matching `rule`, as the body of a regex character class of literal characters. */
function characterClassOf(rule: RegExp): string {
  const ranges: [number, number][] = [];
  for (let code = 0; code <= 0x10ffff; code++) {
    if (code === 0xd800) code = 0xe000; // surrogates are no characters of a JSON string
    if (!rule.test(String.fromCodePoint(code))) continue;
    const last = ranges.at(-1);
    if (last && last[1] === code - 1) last[1] = code;
    else ranges.push([code, code]);
  }
  // Characters with a meaning inside a class would need escaping; none is Cc, Cf or white space, which this asserts.
  const literal = (code: number) => {
    const char = String.fromCodePoint(code);
    if (/[\\\]\[^-]/.test(char)) throw new Error(`display-name: ${char} needs escaping in a character class`);
    return char;
  };
  return ranges.map(([from, to]) => (from === to ? literal(from) : `${literal(from)}-${literal(to)}`)).join("");
}

const inner = characterClassOf(FORBIDDEN);
const edge = characterClassOf(FORBIDDEN_AT_EDGE);

/** One character not at either end; the ends take no white space either. Literal code points, read alike by ECMAScript (u) and Python. */
export const DISPLAY_NAME_PATTERN = new RegExp(`^[^${edge}](?:[^${inner}]*[^${edge}])?$`, "u");

export const DISPLAY_NAME_MESSAGE =
  "must not contain control or format characters (Unicode Cc, Cf, such as U+202E) nor start or end with white space";

/** Whether `value` holds a character the rule refuses (the rule itself, for tests and other callers). */
export const hasControlOrFormatCharacter = (value: string) => FORBIDDEN.test(value);

/**
 * A display name of 1..max characters (code points, as JSON Schema counts them; JavaScript's length counts UTF-16
 * units, so an emoji would count twice).
 */
export function displayNameSchema(max: number) {
  return z
    .string()
    .min(1, "must not be empty")
    .refine((value) => [...value].length <= max, `must be at most ${max} characters long`)
    .regex(DISPLAY_NAME_PATTERN, DISPLAY_NAME_MESSAGE)
    .meta({ minLength: 1, maxLength: max });
}
