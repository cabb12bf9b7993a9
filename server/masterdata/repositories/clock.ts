import { sql } from "drizzle-orm";

/**
 * The database's clock, cut to the milliseconds the columns keep (cut, not
 * rounded, so a stored time is never ahead of the real one). clock_timestamp()
 * is read when the statement runs, i.e. after any row lock it waited for, so
 * the changes of one entity get increasing times.
 */
export const nowMs = () => sql`date_trunc('milliseconds', clock_timestamp())`;
