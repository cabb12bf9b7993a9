import { AsyncLocalStorage } from "node:async_hooks";

/**
 * Work one call wants done inside the transaction of its change, so that both
 * commit or roll back together: the audit trail's row (server/interceptors/audit.ts).
 * `inTransaction` asks the hook of the current call, if there is one, whether
 * a transaction on `db` is the one to carry it. Handles are `unknown` here
 * (database.ts imports this file); the hook knows which database it writes to.
 */
export interface TransactionHook {
  /** Called as a transaction on `db` begins: true takes it (the hook then gets beforeCommit and settled). */
  claim(db: unknown): boolean;
  /** Runs last inside the claimed transaction, after its work succeeded. */
  beforeCommit(tx: unknown): Promise<void>;
  /** The claimed transaction committed (true) or rolled back (false). */
  settled(committed: boolean): void;
}

/** The hook of the call being served; set by an interceptor around the handler. */
export const transactionHooks = new AsyncLocalStorage<TransactionHook>();
