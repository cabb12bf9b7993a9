import { describe, expect, it } from "vitest";
import { additivityViolations, statementsOf, tablesCreatedBy, unexcused } from "./additive.js";
import { type DatabaseKind, migrationsAfter, migrationsUpTo, previousRelease, readExceptions, readJournal, readReleases } from "./releases.js";

// docs/upgrades.md: migrations after the previous release only add, so that both releases run side by side.
const KINDS: DatabaseKind[] = ["metal", "masterdata"];

describe("the additivity check", () => {
  const existing = new Set(["machines", "tokens"]);
  const flagged = (sql: string) => additivityViolations(existing, [{ tag: "0099_x", sql }]).map((v) => v.rule);

  it.each([
    ['ALTER TABLE "machines" DROP COLUMN "rack_id";', "drops a column"],
    ['DROP TABLE "tokens" CASCADE;', "drops a table"],
    ['ALTER TABLE "machines" RENAME COLUMN "rack_id" TO "rack";', "renames"],
    ['ALTER TABLE "tokens" RENAME TO "api_tokens";', "renames"],
    ['ALTER TABLE "machines" ALTER COLUMN "version" SET DATA TYPE integer;', "changes a column's type"],
    ['ALTER TABLE "machines" ALTER COLUMN "rack_id" SET NOT NULL;', "makes a column required"],
    ['ALTER TABLE "machines" ALTER COLUMN "state" DROP DEFAULT;', "drops a default"],
    ['ALTER TABLE "machines" ADD COLUMN "owner" text NOT NULL;', "adds a required column without a default"],
    ['ALTER TABLE public.machines ADD COLUMN owner text NOT NULL, ADD COLUMN "x" integer;', "adds a required column without a default"],
  ])("flags %s", (sql, rule) => {
    expect(flagged(sql).join("; ")).toContain(rule);
  });

  it.each([
    'ALTER TABLE "machines" ADD COLUMN "owner" text DEFAULT \'\' NOT NULL;',
    'ALTER TABLE "machines" ADD COLUMN "note" text;',
    'CREATE TABLE "audit" ("id" text PRIMARY KEY NOT NULL);\n--> statement-breakpoint\nALTER TABLE "audit" DROP COLUMN "id";',
    'CREATE INDEX "machines_x_idx" ON "machines" USING btree ("rack_id");',
    'ALTER TABLE "machines" DROP CONSTRAINT "machines_state_check";',
    'ALTER TABLE "machines" ADD CONSTRAINT "fk" FOREIGN KEY ("size_id") REFERENCES "public"."sizes"("id") ON DELETE restrict;',
    // A function body that mentions DROP COLUMN is not a statement of the migration.
    "CREATE OR REPLACE FUNCTION f() RETURNS trigger AS $$ BEGIN PERFORM 'ALTER TABLE machines DROP COLUMN x;'; RETURN NEW; END $$ LANGUAGE plpgsql;",
  ])("lets %s pass", (sql) => {
    expect(flagged(sql)).toEqual([]);
  });

  it("splits drizzle-kit migrations into statements, keeping quoted semicolons", () => {
    expect(statementsOf("CREATE TABLE \"a\" (x text DEFAULT ';');--> statement-breakpoint\nCREATE INDEX i ON a (x);")).toEqual(["CREATE TABLE \"a\" (x text DEFAULT ';')", "CREATE INDEX i ON a (x)"]);
  });

  it("knows the tables of a release, created and dropped along the way", () => {
    const tables = tablesCreatedBy([{ sql: 'CREATE TABLE "a" (x text);\nCREATE TABLE "b" (y text);' }, { sql: 'DROP TABLE "a";\nALTER TABLE "b" RENAME TO "c";' }]);
    expect([...tables].sort()).toEqual(["c"]);
  });
});

describe("the migrations of this repository", () => {
  it("name every release's last migration in journal order, newest release last", async () => {
    const releases = await readReleases();
    expect(releases.length).toBeGreaterThan(0);
    for (const kind of KINDS) {
      const tags = (await readJournal(kind)).entries.map((e) => e.tag);
      const positions = releases.map((r) => tags.indexOf(r[kind]));
      expect(
        positions.every((p) => p >= 0),
        `${kind}: ${releases.map((r) => r[kind]).join(", ")}`,
      ).toBe(true);
      expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    }
  });

  it.each(KINDS)("of %s are additive after the previous release, but for reviewed exceptions", async (kind) => {
    const release = await previousRelease();
    const existing = tablesCreatedBy(await migrationsUpTo(kind, release[kind]));
    expect(existing.size).toBeGreaterThan(0);
    const after = await migrationsAfter(kind, release[kind]);
    expect(unexcused(kind, additivityViolations(existing, after), await readExceptions())).toEqual([]);
  });

  it.each(KINDS)("of %s were additive between every two releases listed", async (kind) => {
    const releases = await readReleases();
    const tags = (await readJournal(kind)).entries.map((e) => e.tag);
    for (let i = 1; i < releases.length; i++) {
      const [older, newer] = [releases[i - 1]!, releases[i]!];
      const existing = tablesCreatedBy(await migrationsUpTo(kind, older[kind]));
      const between = (await migrationsAfter(kind, older[kind])).slice(0, tags.indexOf(newer[kind]) - tags.indexOf(older[kind]));
      expect(unexcused(kind, additivityViolations(existing, between), await readExceptions()), `${older.name} -> ${newer.name}`).toEqual([]);
    }
  });

  it("has no exception for a migration the check no longer reads, nor one without a reason", async () => {
    const release = await previousRelease();
    for (const e of await readExceptions()) {
      expect(KINDS).toContain(e.database);
      expect(e.reason.trim(), `${e.migration}: reason`).not.toBe("");
      const after = await migrationsAfter(e.database as DatabaseKind, release[e.database as DatabaseKind]);
      const m = after.find((x) => x.tag === e.migration);
      expect(m, `${e.migration} is a migration after ${release.name}`).toBeDefined();
      expect(
        statementsOf(m!.sql).some((s) => s.replace(/\s+/g, " ").includes(e.statement)),
        `${e.migration} contains ${e.statement}`,
      ).toBe(true);
    }
  });
});
