import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./server/masterdata/db/schema/index.ts",
  out: "./server/masterdata/db/migrations",
  strict: true,
});
