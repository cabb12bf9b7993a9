import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import pg from "pg";
import { openPglite } from "./embedded.js";
import { transactionHooks } from "./transaction-hook.js";

/**
 * The one database type every repository works with. A transaction handle is a
 * `Db` too, so repository methods take whichever they are given.
 */
export type Db<S extends Record<string, unknown>> = PgDatabase<PgQueryResultHKT, S>;

export interface Database<S extends Record<string, unknown>> {
  readonly db: Db<S>;
  /** "postgres" runs on a server; "pglite" is embedded and single-connection. */
  readonly kind: "postgres" | "pglite";
  /**
   * Connections of their own, beside the main pool, for the batched work of the
   * long-lived streams (one batch at a time each): when a burst of API calls
   * fills the main pool with transactions, the change they made still reaches
   * the streams at once instead of queueing behind the rest of the burst.
   * PGlite has one connection: there it is `db` itself.
   */
  readonly streamLane: Db<any>;
  close(): Promise<void>;
}

export interface DatabaseOptions<S extends Record<string, unknown>> {
  schema: S;
  /** PostgreSQL URL; undefined selects embedded PGlite in `dataDir` (or in memory if that is undefined too). */
  url: string | undefined;
  dataDir: string | undefined;
  migrationsFolder: string;
  /** Key of the advisory lock that serialises migrations of concurrently starting replicas. */
  migrationLockKey: number;
  poolSize?: number;
}

/** One for the batched reads of the switch sessions, one for their batched sync reports. */
const STREAM_LANE_CONNECTIONS = 2;

/** Opens the database and applies pending migrations before returning it. */
export async function openDatabase<S extends Record<string, unknown>>(opts: DatabaseOptions<S>): Promise<Database<S>> {
  if (opts.url) {
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 20 });
    // An idle client that loses its server must not crash the process; the next query reconnects.
    pool.on("error", () => {});
    try {
      const client = await pool.connect();
      try {
        await client.query("select pg_advisory_lock($1)", [opts.migrationLockKey]);
        await migratePg(drizzlePg({ client, schema: opts.schema }), { migrationsFolder: opts.migrationsFolder });
      } finally {
        await client.query("select pg_advisory_unlock($1)", [opts.migrationLockKey]).catch(() => {});
        client.release();
      }
    } catch (err) {
      await pool.end();
      throw err;
    }
    const db = drizzlePg({ client: pool, schema: opts.schema }) as unknown as Db<S>;
    const lanePool = new pg.Pool({ connectionString: opts.url, max: STREAM_LANE_CONNECTIONS });
    lanePool.on("error", () => {});
    const streamLane = drizzlePg({ client: lanePool, schema: opts.schema }) as unknown as Db<any>;
    return { db, kind: "postgres", streamLane, close: () => Promise.all([pool.end(), lanePool.end()]).then(() => {}) };
  }
  const migrations = { migrationsFolder: opts.migrationsFolder };
  // A new data directory starts as a copy of a migrated template (one per database, named by its lock key); migrating it again below is then a quick no-op.
  const client = await openPglite(opts.dataDir, { name: String(opts.migrationLockKey), key: migrationsKey(opts.migrationsFolder), run: (pg) => migratePglite(drizzlePglite({ client: pg }), migrations) });
  try {
    const db = drizzlePglite({ client, schema: opts.schema });
    await migratePglite(db, migrations);
    return { db: db as unknown as Db<S>, kind: "pglite", streamLane: db as unknown as Db<any>, close: () => client.close() };
  } catch (err) {
    await client.close();
    throw err;
  }
}

/** Names a migrations folder's content: a hash of every file in it, so that a changed or added migration names another template. */
function migrationsKey(folder: string): string {
  const hash = createHash("sha256");
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else
        hash
          .update(`${relative(folder, path)}\0`)
          .update(readFileSync(path))
          .update("\0");
    }
  };
  walk(folder);
  return hash.digest("hex").slice(0, 16);
}

/**
 * Runs `fn` in a transaction; inside it use only the handle it is given (PGlite has one connection).
 * When the current call has a transaction hook that claims this transaction (the audit row of a
 * mutating call: server/db/transaction-hook.ts), the hook's write runs last inside it.
 */
export function inTransaction<T>(db: Db<any>, fn: (tx: Db<any>) => Promise<T>): Promise<T> {
  const hook = transactionHooks.getStore();
  if (!hook?.claim(db)) return db.transaction((tx) => fn(tx as unknown as Db<any>));
  return db
    .transaction(async (tx) => {
      const result = await fn(tx as unknown as Db<any>);
      await hook.beforeCommit(tx as unknown as Db<any>);
      return result;
    })
    .then(
      (result) => {
        hook.settled(true);
        return result;
      },
      (err: unknown) => {
        hook.settled(false);
        throw err;
      },
    );
}
