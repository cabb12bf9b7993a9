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
  /** Ids of what the call created (noteCreated). */
  created(ids: readonly string[]): void;
  /** The project whose resource the call acted on (noteProject). */
  concerns(project: string): void;
}

/** The hook of the call being served; set by an interceptor around the handler. */
export const transactionHooks = new AsyncLocalStorage<TransactionHook>();

/**
 * Names what the current call created (the machine an allocation took, an
 * IP, a network, a token) so that its audit entry lists them among its
 * targets; nothing outside an audited call. Called inside the transaction
 * that made them, before it commits: the entry rides in that transaction,
 * and the ids of one that rolls back are dropped with it.
 */
export function noteCreated(...ids: string[]): void {
  transactionHooks.getStore()?.created(ids.filter((id) => id !== ""));
}

/**
 * Names the project whose resource the current call acted on when its
 * request names none (an operator locking or power-cycling an allocated
 * machine), so that the project's members see the call in their audit
 * trail; nothing outside an audited call or for an empty project. Called
 * before the call's entry is written (inside its transaction).
 */
export function noteProject(project: string | undefined): void {
  if (project) transactionHooks.getStore()?.concerns(project);
}
