import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";
import type { DbHandle } from "../../db/handle.js";

/** masterdata-api's connection to the metal database: what it reads there (keys, tokens) and nothing else. */
export interface MetalReader {
  readonly db: DbHandle;
  /** Fails when the metal database cannot be reached (the health check). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A pool on the metal database whose every session is read-only
 * (`default_transaction_read_only`), so that masterdata-api cannot change the
 * metal database even when it is given a role that could. It runs no
 * migrations: the metal database is metal-api's, and metal-api migrates it.
 * The first connection is made here, so that a wrong URL fails the start.
 */
export async function openMetalReader(url: string, poolSize: number): Promise<MetalReader> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, options: "-c default_transaction_read_only=on" });
  // An idle client that loses its server must not crash the process; the next query reconnects.
  pool.on("error", () => {});
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  return {
    db: drizzle({ client: pool }) as unknown as DbHandle,
    async ping() {
      await pool.query("select 1");
    },
    close: () => pool.end(),
  };
}
