import { expect, it } from "vitest";
import { fieldErrorsFromZod } from "../../api/errors";
import { createFleetRunSchema } from "../../api/routes/fleet";

it("a fleet run's tenant selector is refused naming the field and the three shapes", () => {
  const problems = (body: unknown) => {
    const parsed = createFleetRunSchema.safeParse(body);
    return parsed.success ? [] : fieldErrorsFromZod(parsed.error, "json");
  };
  expect(problems({ kind: "preview", tenants: { all: false } })).toEqual([
    { field: "tenants", message: 'must be {"all": true}, {"slugs": [...]} or {"status": [...]}' },
  ]);
  expect(problems({ kind: "preview", tenants: { slugs: ["Bad_Slug"] } }).map((p) => p.field)).toEqual(["tenants.slugs.0"]);
  expect(problems({ kind: "destroy", tenants: { all: true } }).map((p) => p.field)).toEqual(["kind"]);
  expect(problems({ kind: "up", tenants: { all: true }, max_concurrency: 0 }).map((p) => p.field)).toEqual(["max_concurrency"]);
  expect(createFleetRunSchema.parse({ kind: "drift", tenants: { status: ["completed"] } })).toMatchObject({ max_concurrency: 4, max_failures: 0 });
});
