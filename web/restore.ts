/**
 * A reload of a signed-in tab, started before React renders anything: the
 * token check (UserService.Get) and the machine Watch the tab had open go
 * out together, and the shell is drawn at once from the session the tab
 * kept (web/session.ts saveSession), instead of the Watch and the page
 * waiting for the check. The check's answer then replaces the kept session
 * when it differs, or signs out a refused token. The early Watch is only a
 * head start: the shell adopts it when the session wants the same one and
 * stops it otherwise.
 */
import { createApi } from "./api.js";
import { type MachineWatch, startMachineWatch, watchMachines } from "./machine-watch.js";
import { openSession, type Session, savedSession, savedToken, savedWatchKey } from "./session.js";

export interface Restoring {
  /** The session the tab kept, to draw at once; undefined when it kept none. */
  readonly kept: Session | undefined;
  /** The token check's answer. */
  readonly checked: Promise<Session>;
}

let early: { readonly key: string; readonly watch: MachineWatch } | undefined;

export function restoreSession(): Restoring | undefined {
  const token = savedToken();
  if (!token) return undefined;
  const api = createApi(token);
  const key = savedWatchKey();
  if (key !== undefined) early = { key, watch: startMachineWatch(watchMachines(api, key)) };
  const checked = openSession(token, api);
  checked.catch(() => dropEarlyWatch());
  return { kept: savedSession(api), checked };
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
