import { defineConfig } from "drizzle-kit";

// `npx drizzle-kit generate` writes SQL migrations for db/schema.ts into migrations/.
// They are applied at start-up by db/client.ts (drizzle's migrator); no database is needed to generate.
export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./migrations",
  strict: true,
  verbose: true,
});
