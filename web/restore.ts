/**
 * A reload of a signed-in tab, started before React renders anything: the
 * token check (UserService.Get) and the machine Watch the tab had open go
 * out together, instead of the Watch waiting for the check and a render.
 * The Watch is only a head start: the shell adopts it when the checked
 * session wants the same one, and stops it otherwise (a refused token, a
 * changed role).
 */
import { createApi } from "./api.js";
import { type MachineWatch, startMachineWatch, watchMachines } from "./machine-watch.js";
import { openSession, type Session, savedToken, savedWatchKey } from "./session.js";

export interface Restoring {
  readonly session: Promise<Session>;
}

let early: { readonly key: string; readonly watch: MachineWatch } | undefined;

export function restoreSession(): Restoring | undefined {
  const token = savedToken();
  if (!token) return undefined;
  const api = createApi(token);
  const key = savedWatchKey();
  if (key !== undefined) early = { key, watch: startMachineWatch(watchMachines(api, key)) };
  const session = openSession(token, api);
  session.catch(() => dropEarlyWatch());
  return { session };
}

/** The Watch started at load when it is the one for `key` (once); any other is stopped. */
export function takeEarlyWatch(key: string): MachineWatch | undefined {
  const e = early;
  early = undefined;
  if (e?.key === key) return e.watch;
  e?.watch.stop();
  return undefined;
}

export function dropEarlyWatch(): void {
  early?.watch.stop();
  early = undefined;
}
