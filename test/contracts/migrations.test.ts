import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/**
 * drizzle's migrator applies only journal entries newer than the last applied
 * one; an entry with an older timestamp (after a merge or a hand edit) would be
 * skipped silently. Guard the journals of both databases.
 */
describe.each(["server/db/migrations", "server/masterdata/db/migrations"])("migration journal %s", (folder) => {
  const journal = JSON.parse(readFileSync(`${folder}/meta/_journal.json`, "utf8")) as {
    entries: { idx: number; when: number; tag: string }[];
  };

  it("has strictly increasing timestamps and consecutive indexes", () => {
    journal.entries.forEach((e, i) => {
      expect(e.idx).toBe(i);
      if (i > 0) expect(e.when).toBeGreaterThan(journal.entries[i - 1]!.when);
    });
  });

  it("lists exactly the SQL files in the folder", () => {
    const files = readdirSync(folder)
      .filter((f) => f.endsWith(".sql"))
      .sort();
    expect(journal.entries.map((e) => `${e.tag}.sql`)).toEqual(files);
  });
});
