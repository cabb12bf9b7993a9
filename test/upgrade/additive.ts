/**
 * The rule of docs/upgrades.md: between one release and the next, migrations
 * only add. During a rolling update replicas of both releases run against
 * the new schema, so the old release's statements must keep working: no
 * table or column it uses may go away or be renamed, no column may change
 * its type, and no column it does not write may become required.
 *
 * This reads migration SQL statement by statement (drizzle-kit writes one
 * statement per breakpoint, with quoted identifiers) and reports what breaks
 * the rule on a table that already existed in the previous release; tables
 * the new migrations create are the new release's own.
 */

export interface Violation {
  migration: string;
  table: string;
  rule: string;
  statement: string;
}

/** A reviewed exception: a statement the rule flags that is safe for a stated reason (releases.json "exceptions"). */
export interface AdditivityException {
  database: string;
  migration: string;
  /** A piece of the flagged statement that identifies it. */
  statement: string;
  reason: string;
}

/** Splits a migration file into statements (drizzle-kit breakpoints, then semicolons outside quotes and dollar quotes). */
export function statementsOf(sql: string): string[] {
  const out: string[] = [];
  for (const chunk of sql.split("--> statement-breakpoint")) {
    let current = "";
    let quote: string | undefined;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (quote) {
        current += c;
        if (chunk.startsWith(quote, i)) {
          current += quote.slice(1);
          i += quote.length - 1;
          quote = undefined;
        }
        continue;
      }
      if (c === "-" && chunk[i + 1] === "-") {
        const end = chunk.indexOf("\n", i);
        i = end === -1 ? chunk.length : end;
        current += "\n";
        continue;
      }
      const dollar = /^\$[a-zA-Z_]*\$/.exec(chunk.slice(i));
      if (dollar) {
        quote = dollar[0];
        current += quote;
        i += quote.length - 1;
        continue;
      }
      if (c === "'" || c === '"') {
        quote = c;
        current += c;
        continue;
      }
      if (c === ";") {
        if (current.trim()) out.push(current.trim());
        current = "";
        continue;
      }
      current += c;
    }
    if (current.trim()) out.push(current.trim());
  }
  return out;
}

const IDENT = String.raw`(?:"[^"]+"|[a-zA-Z_][a-zA-Z0-9_]*)`;
const QUALIFIED = String.raw`(?:${IDENT}\s*\.\s*)?(${IDENT})`;
const unquote = (name: string) => (name.startsWith('"') ? name.slice(1, -1) : name).toLowerCase();
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

/** Tables created (and not dropped again) by the given migrations, in order. */
export function tablesCreatedBy(migrations: readonly { sql: string }[]): Set<string> {
  const tables = new Set<string>();
  for (const m of migrations) {
    for (const s of statementsOf(m.sql)) {
      const created = new RegExp(String.raw`^CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?${QUALIFIED}`, "i").exec(s);
      if (created) tables.add(unquote(created[1]!));
      const dropped = new RegExp(String.raw`^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?${QUALIFIED}`, "i").exec(s);
      if (dropped) tables.delete(unquote(dropped[1]!));
      const renamed = new RegExp(String.raw`^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?${QUALIFIED}\s+RENAME\s+TO\s+(${IDENT})`, "i").exec(s);
      if (renamed) {
        tables.delete(unquote(renamed[1]!));
        tables.add(unquote(renamed[2]!));
      }
    }
  }
  return tables;
}

/**
 * What in `migrations` breaks the rule against the tables of the previous
 * release (`existing`). Each ALTER TABLE action is judged on its own.
 */
export function additivityViolations(existing: ReadonlySet<string>, migrations: readonly { tag: string; sql: string }[]): Violation[] {
  const out: Violation[] = [];
  for (const m of migrations) {
    for (const statement of statementsOf(m.sql)) {
      const s = oneLine(statement);
      const flag = (table: string, rule: string) => out.push({ migration: m.tag, table, rule, statement: s });
      const drop = new RegExp(String.raw`^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?${QUALIFIED}`, "i").exec(s);
      if (drop && existing.has(unquote(drop[1]!))) flag(unquote(drop[1]!), "drops a table the previous release uses");
      const rename = new RegExp(String.raw`^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?${QUALIFIED}\s+RENAME\b`, "i").exec(s);
      if (rename && existing.has(unquote(rename[1]!))) flag(unquote(rename[1]!), "renames a table or column the previous release uses");
      const alter = new RegExp(String.raw`^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?${QUALIFIED}\s+(.*)$`, "i").exec(s);
      if (!alter || rename) continue;
      const table = unquote(alter[1]!);
      if (!existing.has(table)) continue;
      for (const action of splitActions(alter[2]!)) {
        if (/^DROP\s+(?:COLUMN\s+)?(?!CONSTRAINT\b|DEFAULT\b)/i.test(action) && !/^DROP\s+CONSTRAINT\b/i.test(action)) flag(table, "drops a column the previous release uses");
        else if (/^ALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b/i.test(action)) flag(table, "changes a column's type (old values or old writers may not fit)");
        else if (/^ALTER\s+(?:COLUMN\s+)?\S+\s+SET\s+NOT\s+NULL\b/i.test(action)) flag(table, "makes a column required that the previous release may leave empty");
        else if (/^ALTER\s+(?:COLUMN\s+)?\S+\s+DROP\s+DEFAULT\b/i.test(action)) flag(table, "drops a default the previous release's inserts rely on");
        else if (/^ADD\s+(?:COLUMN\s+)?(?!CONSTRAINT\b)/i.test(action) && /\bNOT\s+NULL\b/i.test(action) && !/\bDEFAULT\b/i.test(action) && !/\bGENERATED\b/i.test(action))
          flag(table, "adds a required column without a default: the previous release's inserts fail");
      }
    }
  }
  return out;
}

/** The comma-separated actions of one ALTER TABLE, commas inside parentheses and quotes kept. */
function splitActions(actions: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let current = "";
  for (const c of actions) {
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      out.push(current.trim());
      current = "";
      continue;
    }
    current += c;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

/** The violations no exception covers. */
export function unexcused(database: string, violations: readonly Violation[], exceptions: readonly AdditivityException[]): Violation[] {
  return violations.filter((v) => !exceptions.some((e) => e.database === database && e.migration === v.migration && v.statement.includes(e.statement) && e.reason.trim().length > 0));
}
