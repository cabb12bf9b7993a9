import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as oidc from "openid-client";
import type { SignInServiceConfigResponse } from "../../gen/metal/api/v1/signin_pb.js";
import type { Env } from "../config-file.js";
import { UsageError } from "../output.js";

/** The path of metalctl's loopback redirect URI (http://127.0.0.1:<any port>/callback, RFC 8252 §7.3). */
export const CALLBACK_PATH = "/callback";
/** How long the browser flow waits for the person to sign in. */
const BROWSER_TIMEOUT_MS = 5 * 60_000;

export const isLoopback = (u: URL) => u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]";

/** The issuer's configuration, as the control plane names it (http only on a loopback host, as the server allows). */
export async function discover(settings: SignInServiceConfigResponse): Promise<oidc.Configuration> {
  const url = new URL(settings.issuer);
  return oidc.discovery(url, settings.clientId, undefined, oidc.None(), {
    timeout: 15,
    execute: url.protocol === "http:" && isLoopback(url) ? [oidc.allowInsecureRequests] : [],
  });
}

/**
 * The device flow (RFC 8628), for a host without a browser: tells the person
 * where to go and which code to type, then polls the issuer until they have
 * signed in (or the code expires, or they refuse). Returns the ID token.
 */
export async function deviceFlow(config: oidc.Configuration, scopes: readonly string[], say: (text: string) => void, signal?: AbortSignal): Promise<string> {
  const device = await oidc.initiateDeviceAuthorization(config, { scope: scopes.join(" ") });
  say(`To sign in, open ${device.verification_uri} and enter the code ${device.user_code}\n`);
  if (device.verification_uri_complete) say(`(or open ${device.verification_uri_complete})\n`);
  say(`waiting for the sign-in (the code expires in ${Math.round(device.expires_in / 60)} minutes) ...\n`);
  const tokens = await oidc.pollDeviceAuthorizationGrant(config, device, undefined, { signal });
  if (!tokens.id_token) throw new Error("the issuer returned no ID token (is the openid scope allowed for this client?)");
  return tokens.id_token;
}

/** What the browser flow ends with: a code for the control plane to redeem. */
export interface AuthorizationCodeProof {
  code: string;
  codeVerifier: string;
  redirectUri: string;
}

/**
 * The authorization code flow with PKCE in the person's browser (RFC 8252):
 * a listener on 127.0.0.1 (a free port) receives the redirect; state guards
 * against a forged callback. The code is not redeemed here: the control
 * plane does that (it may hold a client secret metalctl has not).
 */
export async function browserFlow(config: oidc.Configuration, scopes: readonly string[], say: (text: string) => void, env: Env): Promise<AuthorizationCodeProof> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const codeChallenge = await oidc.calculatePKCECodeChallenge(codeVerifier);
  const state = oidc.randomState();
  const issuer = config.serverMetadata().issuer;
  // RFC 9207: an issuer that says it names itself in the answer must do so; an answer without it is not its own.
  const issRequired = config.serverMetadata().authorization_response_iss_parameter_supported === true;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  try {
    const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}${CALLBACK_PATH}`;
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: scopes.join(" "),
      code_challenge: codeChallenge,
      code_challenge_method: "S256",
      state,
    });
    const code = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new UsageError("no sign-in within 5 minutes; run metalctl login again")), BROWSER_TIMEOUT_MS);
      server.on("request", (req, res) => {
        const u = new URL(req.url ?? "/", redirectUri);
        if (u.pathname !== CALLBACK_PATH || u.searchParams.get("state") !== state) {
          res.writeHead(404, { "content-type": "text/plain" });
          res.end("not found\n");
          return;
        }
        const finish = (status: number, text: string) => {
          res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
          res.end(`${text}\n`);
          clearTimeout(timer);
        };
        const error = u.searchParams.get("error");
        const iss = u.searchParams.get("iss");
        const got = u.searchParams.get("code");
        if (error) {
          finish(400, "Sign-in refused; see metalctl.");
          reject(new UsageError(`the identity provider refused the sign-in: ${error.slice(0, 64)}`));
        } else if ((iss !== null || issRequired) && iss !== issuer) {
          finish(400, "Sign-in answered by another issuer; see metalctl.");
          reject(new UsageError("the sign-in was answered by another issuer (RFC 9207 iss mismatch)"));
        } else if (!got) {
          finish(400, "No code in the answer; see metalctl.");
          reject(new UsageError("the identity provider sent no authorization code"));
        } else {
          finish(200, "Signed in. You can close this window and return to metalctl.");
          resolve(got);
        }
      });
    });
    say(`Open this URL in your browser to sign in:\n${url.href}\n`);
    openBrowser(url.href, env);
    return { code: await code, codeVerifier, redirectUri };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** Opens the URL where a desktop is at hand; on a headless host the printed URL is the way. Never fails. */
function openBrowser(url: string, env: Env): void {
  const command = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : env.DISPLAY || env.WAYLAND_DISPLAY ? "xdg-open" : undefined;
  if (!command || env.METALCTL_NO_BROWSER) return;
  try {
    const child = spawn(command, [url], { stdio: "ignore", detached: true });
    child.on("error", () => {});
    child.unref();
  } catch {
    /* the printed URL is the fallback */
  }
}

/** The issuer's refusal in a line: access_denied, expired_token and the like, without any secret. */
export function describeOidcError(err: unknown): string | undefined {
  const e = err as { error?: unknown; error_description?: unknown; code?: unknown };
  if (typeof e.error === "string") {
    const description = typeof e.error_description === "string" ? `: ${e.error_description.slice(0, 200)}` : "";
    if (e.error === "access_denied") return `the identity provider refused the sign-in${description}`;
    if (e.error === "expired_token") return "the code expired before the sign-in was completed; run metalctl login again";
    return `the identity provider answered ${e.error.slice(0, 64)}${description}`;
  }
  if (e.code === "OAUTH_RESPONSE_IS_NOT_CONFORM" || e.code === "OAUTH_HTTP_REQUEST_FORBIDDEN") return `the identity provider cannot be used: ${String((err as Error).message).slice(0, 200)}`;
  return undefined;
}
