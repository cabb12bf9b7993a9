import type { Db } from "./database.js";

/**
 * The handle repositories, use cases and handlers take: the pool's database or
 * a transaction opened on it (both are a `Db`). Nothing in the code base uses
 * drizzle's relational `db.query.*` API, so the schema parameter carries no
 * information; one name here keeps the `any` in a single place for the metal
 * and the masterdata databases alike.
 */
// biome-ignore lint/suspicious/noExplicitAny: the schema parameter is unused (see above); any keeps both databases' handles assignable
export type DbHandle = Db<any>;
