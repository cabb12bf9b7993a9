/**
 * OpenID Connect sign-in in the browser (docs/signin.md): the authorization
 * code flow with PKCE. The console sends the person to the issuer's
 * authorization endpoint; the issuer sends them back to /ui/signin/callback
 * with a code, which the console hands to metal-api (SignInService.Exchange)
 * with the PKCE verifier; metal-api redeems it at the issuer and answers
 * with a metal token. The console itself never talks to the issuer (its CSP
 * allows its own origin only) and never holds an ID token.
 */
import { SignInService, type SignInServiceConfigResponse } from "../gen/metal/api/v1/signin_pb.js";
import { createApi } from "./api.js";

/** Where the issuer sends the person back: a console page (the server answers /ui/... with index.html). */
export const CALLBACK_PATH = "/ui/signin/callback";
/** The verifier and state of the sign-in under way, in this tab only. */
const PENDING_KEY = "metal-console.oidc-pending";

interface Pending {
  verifier: string;
  state: string;
  redirectUri: string;
}

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const random = (n: number) => base64url(crypto.getRandomValues(new Uint8Array(n)));

/** How to sign in, as metal-api says; undefined when it has no issuer (or cannot say). */
export async function signInConfig(): Promise<SignInServiceConfigResponse | undefined> {
  try {
    const c = await createApi("")(SignInService).config({});
    return c.enabled && c.authorizationEndpoint !== "" ? c : undefined;
  } catch {
    return undefined;
  }
}

/** Leaves for the issuer's sign-in page; the tab comes back to CALLBACK_PATH. */
export async function startSignIn(c: SignInServiceConfigResponse): Promise<void> {
  const verifier = random(32);
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const pending: Pending = { verifier, state: random(16), redirectUri: `${window.location.origin}${CALLBACK_PATH}` };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(c.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: c.clientId,
    redirect_uri: pending.redirectUri,
    scope: c.scopes.join(" "),
    code_challenge: challenge,
    code_challenge_method: "S256",
    state: pending.state,
  }).toString();
  window.location.assign(url.toString());
}

/** This page load is the issuer's answer. */
export const isCallback = () => window.location.pathname === CALLBACK_PATH;

/**
 * The issuer's answer: checks the state against the sign-in this tab
 * started, forgets it (a code is good once), takes the code out of the
 * address bar and history, and exchanges it for a metal token.
 */
export async function finishSignIn(): Promise<string> {
  const params = new URLSearchParams(window.location.search);
  const pendingText = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  window.history.replaceState(null, "", "/");
  const pending = pendingText ? (JSON.parse(pendingText) as Pending) : undefined;
  if (!pending || params.get("state") !== pending.state) throw new Error("This sign-in was not started in this tab (or it was already used); sign in again.");
  const error = params.get("error");
  if (error) throw new Error(`The identity provider refused the sign-in: ${params.get("error_description") ?? error}`);
  const code = params.get("code");
  if (!code) throw new Error("The identity provider sent no code; sign in again.");
  const r = await createApi("")(SignInService).exchange({ proof: { case: "authorizationCode", value: { code, codeVerifier: pending.verifier, redirectUri: pending.redirectUri } }, description: "web console" });
  return r.secret;
}
