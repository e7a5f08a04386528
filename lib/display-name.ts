/**
 * Display names (tenant, token, ...): shown to operators in the console and in logs, so they may hold no Unicode
 * control (Cc) or format (Cf) character: U+202E RIGHT-TO-LEFT OVERRIDE would reverse what an operator reads, a
 * zero-width space would make two names look alike, a newline would forge a log line. White space at either end
 * is refused too (not trimmed: what is stored is what was sent).
 *
 * The rule is /\p{Cc}|\p{Cf}/u. The OpenAPI document states it as a `pattern`, which clients and the fuzzer read with
 * their own regex engines (Python's has no \p{...}), so the pattern spells the same characters out as ranges of
 * literal code points (CC_CF below; a unit test holds the two to each other over every code point).
 */
import { z } from "zod";

const FORBIDDEN = /\p{Cc}|\p{Cf}/u;

/**
 * The code points of /\p{Cc}|\p{Cf}/u (Unicode 16, as Node 22 has it), and with \p{White_Space} for the ends.
 * Written out rather than computed (a scan of every code point costs a second at start-up);
 * test/unit/display-name.test.ts checks both lists against the rule over every code point.
 */
const CC_CF: [number, number][] = [
  [0x0, 0x1f],
  [0x7f, 0x9f],
  [0xad, 0xad],
  [0x600, 0x605],
  [0x61c, 0x61c],
  [0x6dd, 0x6dd],
  [0x70f, 0x70f],
  [0x890, 0x891],
  [0x8e2, 0x8e2],
  [0x180e, 0x180e],
  [0x200b, 0x200f],
  [0x202a, 0x202e],
  [0x2060, 0x2064],
  [0x2066, 0x206f],
  [0xfeff, 0xfeff],
  [0xfff9, 0xfffb],
  [0x110bd, 0x110bd],
  [0x110cd, 0x110cd],
  [0x13430, 0x1343f],
  [0x1bca0, 0x1bca3],
  [0x1d173, 0x1d17a],
  [0xe0001, 0xe0001],
  [0xe0020, 0xe007f],
];
const WHITE_SPACE_NOT_CC_CF: [number, number][] = [
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
];

/** `ranges` as the body of a regex character class of literal characters. */
function characterClassOf(ranges: [number, number][]): string {
  // Characters with a meaning inside a class would need escaping; none is Cc, Cf or white space, which this asserts.
  const literal = (code: number) => {
    const char = String.fromCodePoint(code);
    if (/[\\\][^-]/.test(char)) throw new Error(`display-name: ${char} needs escaping in a character class`);
    return char;
  };
  return ranges.map(([from, to]) => (from === to ? literal(from) : `${literal(from)}-${literal(to)}`)).join("");
}

const inner = characterClassOf(CC_CF);
const edge = characterClassOf([...CC_CF, ...WHITE_SPACE_NOT_CC_CF]);

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
  return (
    z
      .string()
      .min(1, "must not be empty")
      .refine((value) => [...value].length <= max, `must be at most ${max} characters long`)
      .regex(DISPLAY_NAME_PATTERN, DISPLAY_NAME_MESSAGE)
      // The generator would write a regex with flags as "...$/u": the pattern is given as its source.
      .meta({ minLength: 1, maxLength: max, pattern: DISPLAY_NAME_PATTERN.source })
  );
}
