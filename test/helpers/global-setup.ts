import { dropScratchDatabasesOfEndedProcesses, prepareMigratedTemplates } from "./postgres.js";

/**
 * Once per `vitest run`, before any test file: the migrated template
 * databases exist (so the first files do not queue behind one migration),
 * and scratch databases that runs ended without dropping (a killed run, a
 * worker that exited before its last background drop) are dropped.
 */
export default async function setup(): Promise<void> {
  await Promise.all([prepareMigratedTemplates(), dropScratchDatabasesOfEndedProcesses()]);
}
