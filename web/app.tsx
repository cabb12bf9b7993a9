/**
 * The console's shell: sign-in, navigation, the project picker and the one
 * machine Watch every machine page shares. Pages are chosen by the URL hash
 * (#/machines, #/machines/ID, #/machines/ID/console, ...), so the server only ever serves index.html.
 */
import { type FormEvent, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { isUnauthenticated } from "./api.js";
import { type MachineWatch, startMachineWatch, watchMachines } from "./machine-watch.js";
import { CapacityPage } from "./pages/capacity.js";
import { ConsolePage } from "./pages/console.js";
import { MachinePage } from "./pages/machine.js";
import { MachinesPage } from "./pages/machines.js";
import { NetworksPage } from "./pages/networks.js";
import { BmcPage, IssuesPage, SwitchesPage } from "./pages/operator.js";
import { OidcSignInButton, useOidcCallback } from "./pages/signin-oidc.js";
import { dropEarlyWatch, type Restoring, takeEarlyWatch } from "./restore.js";
import { openSession, type Session, sameSession, savedProject, savedToken, saveProject, saveSession, saveToken, saveWatchKey, signOut } from "./session.js";
import { ErrorLine } from "./ui.js";

/** What every page gets. */
export interface PageProps {
  readonly session: Session;
  /** The selected project; undefined for an operator looking at everything. */
  readonly project: string | undefined;
  readonly watch: MachineWatch | undefined;
}

function useHash(): string {
  return useSyncExternalStore(
    (cb) => {
      window.addEventListener("hashchange", cb);
      return () => window.removeEventListener("hashchange", cb);
    },
    () => window.location.hash,
  );
}

/** `restoring`: the session of a reloaded tab, kept and being checked since before the first render (web/restore.ts). */
export function App({ restoring: restored }: { restoring?: Restoring }) {
  const [session, setSession] = useState<Session | undefined>(restored?.kept);
  const [restoring, setRestoring] = useState(restored !== undefined && restored.kept === undefined);
  const [error, setError] = useState<unknown>(undefined);

  const signIn = (token: string) =>
    openSession(token).then(
      (s) => {
        saveToken(token);
        saveSession(s);
        setSession(s);
        setError(undefined);
      },
      (err: unknown) => setError(err),
    );

  // Once, at load: the check of a reloaded tab's token. The same answer keeps the session drawn from the tab (and
  // with it the open Watch); another replaces it; a refusal signs the tab out. Ignored once signed out meanwhile.
  useEffect(() => {
    restored?.checked
      .then(
        (checked) => {
          if (savedToken() === undefined) return;
          saveSession(checked);
          setSession((shown) => (shown && sameSession(shown, checked) ? shown : checked));
        },
        (err: unknown) => {
          if (savedToken() === undefined) return;
          // A refused token is forgotten (sign in again); an unreachable server leaves it for the next reload.
          if (isUnauthenticated(err)) signOut();
          dropEarlyWatch();
          setSession(undefined);
          setError(err);
        },
      )
      .finally(() => setRestoring(false));
  }, [restored]);

  // Back from the identity provider (docs/signin.md): its code is exchanged for a metal token, then as signIn.
  const oidcCallback = useOidcCallback(signIn, setError);
  if (restoring || oidcCallback) return <p className="loading">Signing in…</p>;
  if (!session) return <SignIn onToken={signIn} error={error} onError={setError} />;
  return (
    <Shell
      session={session}
      onSignOut={() => {
        signOut();
        dropEarlyWatch();
        setSession(undefined);
      }}
    />
  );
}

function SignIn({ onToken, error, onError }: { onToken: (token: string) => Promise<void>; error: unknown; onError: (err: unknown) => void }) {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    onToken(token.trim()).finally(() => setBusy(false));
  };
  return (
    <main className="signin">
      <h1>metal</h1>
      <form onSubmit={submit}>
        <label>
          Token
          <input name="token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} required />
        </label>
        <button type="submit" disabled={busy || token.trim() === ""}>
          Sign in
        </button>
        <ErrorLine error={error} />
        <p className="hint">
          A metal token, e.g. from <code>metalctl token create</code> or the lab's metalctl context. It is kept in this tab only (sessionStorage) until you sign out or close the tab.
        </p>
      </form>
      <OidcSignInButton onError={onError} />
    </main>
  );
}

const PAGES: { path: string; title: string; operator?: boolean }[] = [
  { path: "machines", title: "Machines" },
  { path: "networks", title: "Networks & IPs" },
  { path: "capacity", title: "Capacity" },
  { path: "switches", title: "Switches", operator: true },
  { path: "bmc", title: "BMC commands", operator: true },
  { path: "issues", title: "Machine issues", operator: true },
];

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const hash = useHash();
  const own = [...session.projects.keys()].sort();
  const [project, setProject] = useState<string | undefined>(() => {
    const saved = savedProject();
    if (saved !== undefined && (session.operator || session.projects.has(saved))) return saved || undefined;
    return session.operator ? undefined : own[0];
  });
  const choose = (p: string) => {
    saveProject(p);
    setProject(p || undefined);
  };
  // Operators watch every machine (the admin Watch); a tenant watches the selected project's.
  const watchKey = session.operator ? "*" : project;
  const watch = useMemo(() => {
    if (watchKey === undefined) return undefined;
    // After a reload, the Watch started with the token check (web/restore.ts) when it is this one.
    return takeEarlyWatch(watchKey) ?? startMachineWatch(watchMachines(session.api, watchKey));
  }, [session, watchKey]);
  useEffect(() => {
    saveWatchKey(watchKey);
    return () => watch?.stop();
  }, [watch, watchKey]);

  const [, page = "machines", id, sub] = hash.split("/");
  const props: PageProps = { session, project, watch };
  const known = PAGES.find((p) => p.path === page && (!p.operator || session.operator));
  return (
    <>
      <header>
        <a className="brand" href="#/machines">
          metal
        </a>
        <nav>
          {PAGES.filter((p) => !p.operator || session.operator).map((p) => (
            <a key={p.path} href={`#/${p.path}`} className={p.path === page ? "current" : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <ProjectPicker session={session} project={project} own={own} onChoose={choose} />
        <span className="who" title={session.operator ? "operator" : "tenant"}>
          {session.subject}
          {session.operator ? " (operator)" : ""}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main>
        {!known ? (
          <p className="error">No such page.</p>
        ) : page === "machines" && id && sub === "console" ? (
          <ConsolePage key={id} {...props} id={decodeURIComponent(id)} />
        ) : page === "machines" && id ? (
          <MachinePage {...props} id={decodeURIComponent(id)} />
        ) : page === "machines" ? (
          <MachinesPage {...props} />
        ) : page === "networks" ? (
          <NetworksPage {...props} />
        ) : page === "capacity" ? (
          <CapacityPage {...props} />
        ) : page === "switches" ? (
          <SwitchesPage {...props} />
        ) : page === "bmc" ? (
          <BmcPage {...props} id={id ? decodeURIComponent(id) : undefined} />
        ) : (
          <IssuesPage {...props} />
        )}
      </main>
    </>
  );
}

/** Tenants pick one of their token's projects; operators may also type any project id (or none: everything). */
function ProjectPicker({ session, project, own, onChoose }: { session: Session; project: string | undefined; own: string[]; onChoose: (p: string) => void }) {
  const [typed, setTyped] = useState(project ?? "");
  useEffect(() => setTyped(project ?? ""), [project]);
  if (!session.operator && own.length > 0) {
    return (
      <label className="project">
        Project
        <select name="project" value={project ?? ""} onChange={(e) => onChoose(e.target.value)}>
          {own.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </label>
    );
  }
  return (
    <form
      className="project"
      onSubmit={(e) => {
        e.preventDefault();
        onChoose(typed.trim());
      }}
    >
      <label>
        Project
        <input name="project" list="own-projects" placeholder={session.operator ? "all" : "project id"} value={typed} onChange={(e) => setTyped(e.target.value)} onBlur={() => onChoose(typed.trim())} />
      </label>
      <datalist id="own-projects">
        {own.map((p) => (
          <option key={p} value={p} />
        ))}
      </datalist>
    </form>
  );
}
