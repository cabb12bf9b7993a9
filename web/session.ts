/**
 * Who is signed in. The token lives in sessionStorage: it survives a reload
 * of this tab, is gone when the tab closes, and is never shared with other
 * tabs or written to disk by the console. Signing out removes it.
 */
import { AdminRole, ProjectRole } from "../gen/metal/api/v1/common_pb.js";
import { UserService } from "../gen/metal/api/v1/user_pb.js";
import { type ClientOf, createApi } from "./api.js";

const TOKEN_KEY = "metal-console.token";
const PROJECT_KEY = "metal-console.project";
const WATCH_KEY = "metal-console.watch";
const SESSION_KEY = "metal-console.session";

export interface Session {
  readonly api: ClientOf;
  readonly subject: string;
  /** May read the operator (admin) services. */
  readonly operator: boolean;
  /** May change things through the operator services. */
  readonly operatorWrites: boolean;
  /** The token's own projects with their role (a tenant picks among these). */
  readonly projects: ReadonlyMap<string, ProjectRole>;
}

/** Asks metal-api who the token belongs to; throws the ConnectError of a token it refuses. */
export async function openSession(token: string, api: ClientOf = createApi(token)): Promise<Session> {
  const user = (await api(UserService).get({})).user;
  const roles = user?.token?.roles;
  const adminRole = roles?.adminRole ?? AdminRole.UNSPECIFIED;
  return {
    api,
    subject: user?.subject ?? "",
    operator: adminRole !== AdminRole.UNSPECIFIED,
    operatorWrites: adminRole === AdminRole.ADMIN,
    projects: new Map(Object.entries(roles?.projectRoles ?? {})),
  };
}

type KeptSession = { subject: string; operator: boolean; operatorWrites: boolean; projects: Record<string, ProjectRole> };

/**
 * What the token check said, kept in the tab so that a reload can draw the
 * shell at once while the check runs again. It only decides what the
 * console offers (pages, buttons); every call is authorized by metal-api
 * with the token itself, so a stale copy shows at most a button the server refuses.
 */
export const saveSession = (s: Session) =>
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ subject: s.subject, operator: s.operator, operatorWrites: s.operatorWrites, projects: Object.fromEntries(s.projects) } satisfies KeptSession));

export function savedSession(api: ClientOf): Session | undefined {
  try {
    const k = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null") as KeptSession | null;
    if (!k || typeof k.subject !== "string" || typeof k.projects !== "object") return undefined;
    return { api, subject: k.subject, operator: k.operator === true, operatorWrites: k.operatorWrites === true, projects: new Map(Object.entries(k.projects)) };
  } catch {
    return undefined;
  }
}

/** The same person with the same rights (the api aside). */
export const sameSession = (a: Session, b: Session) =>
  a.subject === b.subject && a.operator === b.operator && a.operatorWrites === b.operatorWrites && a.projects.size === b.projects.size && [...a.projects].every(([p, r]) => b.projects.get(p) === r);

export const savedToken = () => sessionStorage.getItem(TOKEN_KEY) ?? undefined;
export const saveToken = (token: string) => sessionStorage.setItem(TOKEN_KEY, token);
export const savedProject = () => sessionStorage.getItem(PROJECT_KEY) ?? undefined;
export const saveProject = (project: string) => sessionStorage.setItem(PROJECT_KEY, project);

/** Which machine Watch the tab had open ("*" for the operator's, else the project): a reload opens it again at once. */
export const savedWatchKey = () => sessionStorage.getItem(WATCH_KEY) ?? undefined;
export const saveWatchKey = (key: string | undefined) => (key === undefined ? sessionStorage.removeItem(WATCH_KEY) : sessionStorage.setItem(WATCH_KEY, key));

export function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(PROJECT_KEY);
  sessionStorage.removeItem(WATCH_KEY);
  sessionStorage.removeItem(SESSION_KEY);
}

/** A role that may allocate, free and change things in a project. */
export const canEdit = (s: Session, project: string | undefined) => s.operatorWrites || (project !== undefined && (s.projects.get(project) ?? ProjectRole.UNSPECIFIED) >= ProjectRole.EDITOR);
