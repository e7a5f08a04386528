import { describe, expect, it } from "vitest";
import { createTenantSchema, createTokenSchema } from "../../api/schemas";
import { DISPLAY_NAME_MESSAGE, DISPLAY_NAME_PATTERN, hasControlOrFormatCharacter } from "../../lib/display-name";

describe("display names refuse Unicode control (Cc) and format (Cf) characters", () => {
  it.each([
    ["U+202E right-to-left override", "Acme\u202Egnp.exe"],
    ["U+200B zero-width space", "Ac\u200Bme"],
    ["U+2066 left-to-right isolate", "\u2066Acme"],
    ["a newline", "Acme\nCorp"],
    ["NUL", "Acme\u0000"],
    ["U+0085 next line", "Acme\u0085Corp"],
    ["U+FEFF byte order mark", "\uFEFFAcme"],
    ["U+E0001 language tag (astral)", "Acme\u{E0001}"],
    ["a leading space", " Acme"],
    ["a trailing tab", "Acme\t"],
  ])("refuses %s", (_label, name) => {
    const parsed = createTenantSchema.safeParse({ slug: "acme-corp", name });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues.map((issue) => [issue.path.join("."), issue.message])).toContainEqual(["name", DISPLAY_NAME_MESSAGE]);
  });

  it.each([["Acme Corp"], ["Zürich AG"], ["東京 株式会社"], ["Ünïcödé – with dashes & emoji 🚀"], ["x"]])("accepts %s", (name) => {
    expect(createTenantSchema.safeParse({ slug: "acme-corp", name }).success).toBe(true);
    expect(createTokenSchema.safeParse({ name }).success).toBe(true);
  });

  it("counts the length in characters, as JSON Schema does: 100 emoji are 100 characters", () => {
    expect(createTokenSchema.safeParse({ name: "🚀".repeat(100) }).success).toBe(true);
    expect(createTokenSchema.safeParse({ name: "🚀".repeat(101) }).success).toBe(false);
  });

  it("the schema's pattern refuses exactly the characters /\\p{Cc}|\\p{Cf}/u matches, over every code point", () => {
    const disagreements: string[] = [];
    for (let code = 0; code <= 0x10ffff; code++) {
      if (code === 0xd800) code = 0xe000;
      const char = String.fromCodePoint(code);
      if (DISPLAY_NAME_PATTERN.test(`a${char}a`) === hasControlOrFormatCharacter(char)) disagreements.push(code.toString(16));
      // At either end, white space is refused too.
      if (DISPLAY_NAME_PATTERN.test(`${char}a`) === (hasControlOrFormatCharacter(char) || /\p{White_Space}/u.test(char)))
        disagreements.push(`edge ${code.toString(16)}`);
    }
    expect(disagreements).toEqual([]);
  });
});
