import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import Provider from "oidc-provider";

/** A person at the test identity provider. */
export interface IdpAccount {
  login: string;
  sub: string;
  email: string;
  name: string;
  disabled: boolean;
}

/** The client every test signs in as: public (no secret), device flow and authorization code with PKCE, loopback redirects on any port. */
export const TEST_CLIENT_ID = "metal-test";
/** Redirect paths the test client has registered (on 127.0.0.1, any port: RFC 8252 loopback). */
export const METALCTL_CALLBACK_PATH = "/callback";
export const WEB_CALLBACK_PATH = "/ui/signin/callback";

export interface TestIdp {
  issuer: string;
  clientId: string;
  /** Adds a person (login is also the local part of their e-mail address). */
  addAccount(login: string, opts?: { email?: string; sub?: string }): IdpAccount;
  /** Disabled accounts cannot sign in, and pending grants for them are refused at the token endpoint. */
  disable(login: string): void;
  /** A person completes a device authorization in their browser: opens the verification URI, types the code, signs in. */
  completeDevice(verificationUri: string, userCode: string, login: string): Promise<string>;
  /**
   * A person opens an authorization URL and signs in; the issuer's redirect to
   * the client is returned (not followed) as a URL, with code (or error) in its query.
   */
  authorize(authorizationUrl: string, login: string): Promise<URL>;
  /** Signs an arbitrary ID token with the issuer's own key (for bad-proof tests: wrong audience, issuer, expiry). */
  signIdToken(claims: JWTPayload, opts?: { expiresInS?: number; issuedAtS?: number }): Promise<string>;
  close(): Promise<void>;
}

/**
 * A real OpenID Connect provider (the `oidc-provider` package) on a free
 * loopback port, with in-memory storage, device flow, PKCE required, and
 * interaction pages of its own: a login form that takes a login name (no
 * password: the test is the person) and grants the requested scopes at once.
 */
export async function startTestIdp(): Promise<TestIdp> {
  const accounts = new Map<string, IdpAccount>();
  const bySub = new Map<string, IdpAccount>();
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: "test-key-1", use: "sig", alg: "RS256" };

  // The port is known only once listening; the provider is built then (its issuer names the port).
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: TEST_CLIENT_ID,
        application_type: "native",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
        response_types: ["code"],
        redirect_uris: [`http://127.0.0.1${METALCTL_CALLBACK_PATH}`, `http://127.0.0.1${WEB_CALLBACK_PATH}`],
      },
    ],
    jwks: { keys: [jwk as never] },
    features: { devInteractions: { enabled: false }, deviceFlow: { enabled: true } },
    conformIdTokenClaims: false,
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 600, DeviceCode: 600, AuthorizationCode: 60 },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    cookies: { keys: [randomBytes(16).toString("hex")] },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx: unknown, sub: string) {
      const a = bySub.get(sub);
      if (!a || a.disabled) return undefined;
      return { accountId: sub, claims: () => ({ sub, email: a.email, email_verified: true, name: a.name }) };
    },
  } as never);
  provider.on("server_error", () => {});

  const callback = provider.callback();
  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const m = /^\/interaction\/([^/?]+)(\/login)?/.exec(req.url ?? "");
    if (!m) {
      callback(req, res);
      return;
    }
    interaction(req, res, m[1]!, m[2] !== undefined).catch((err: unknown) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(err));
    });
  });

  async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, submit: boolean) {
    const details = await provider.interactionDetails(req, res);
    if (!submit) {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!DOCTYPE html><html><body><h1>Sign in</h1><form method="post" action="/interaction/${uid}/login"><input type="text" name="login"/><button type="submit">Sign in</button></form></body></html>`);
      return;
    }
    const form = new URLSearchParams(await body(req));
    const account = accounts.get(form.get("login") ?? "");
    if (!account || account.disabled) {
      await provider.interactionFinished(req, res, { error: "access_denied", error_description: "the account is disabled or unknown" }, { mergeWithLastSubmission: false });
      return;
    }
    const grant = new provider.Grant({ accountId: account.sub, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope ?? "openid"));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { login: { accountId: account.sub }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  /** A person's browser: a cookie jar, redirects followed by hand so that the one leaving the issuer can be kept. */
  function browser() {
    const jar = new Map<string, string>();
    async function request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<{ url: string; status: number; location?: string; html: string }> {
      const headers: Record<string, string> = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") };
      let payload: string | undefined;
      if (init.form) {
        headers["content-type"] = "application/x-www-form-urlencoded";
        payload = new URLSearchParams(init.form).toString();
      }
      const res = await fetch(url, { method: init.method ?? "GET", headers, body: payload, redirect: "manual" });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(";");
        const at = pair!.indexOf("=");
        jar.set(pair!.slice(0, at), pair!.slice(at + 1));
      }
      const location = res.headers.get("location") ?? undefined;
      return { url, status: res.status, location: location === undefined ? undefined : new URL(location, url).toString(), html: await res.text() };
    }
    /** Follows redirects while they stay at the issuer; returns the page reached, or the redirect that leaves. */
    async function follow(first: Promise<Awaited<ReturnType<typeof request>>>) {
      let page = await first;
      for (let hops = 0; page.location !== undefined && hops < 10; hops++) {
        if (!page.location.startsWith(`${issuer}/`)) return page;
        page = await request(page.location);
      }
      return page;
    }
    return { request, follow };
  }

  function formOf(html: string, baseUrl: string): { action: string; fields: Record<string, string> } {
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(html);
    if (!form) throw new Error(`no form on the page: ${html.slice(0, 300)}`);
    const fields: Record<string, string> = {};
    for (const input of form[2]!.matchAll(/<input([^>]*)>/g)) {
      const name = /name="([^"]+)"/.exec(input[1]!)?.[1];
      if (name) fields[name] = /value="([^"]*)"/.exec(input[1]!)?.[1] ?? "";
    }
    return { action: new URL(form[1]!.replace(/&amp;/g, "&"), baseUrl).toString(), fields };
  }

  /** On the sign-in form of an interaction: types the login and submits; returns what follows. */
  async function signInAt(b: ReturnType<typeof browser>, page: { url: string; html: string; location?: string }, login: string) {
    const f = formOf(page.html, page.url);
    if (!("login" in f.fields)) throw new Error(`expected the sign-in form, got: ${page.html.slice(0, 300)}`);
    return b.follow(b.request(f.action, { method: "POST", form: { ...f.fields, login } }));
  }

  return {
    issuer,
    clientId: TEST_CLIENT_ID,
    addAccount(login, opts = {}) {
      const a: IdpAccount = { login, sub: opts.sub ?? `sub-${randomBytes(6).toString("hex")}`, email: opts.email ?? `${login}@example.test`, name: `${login} tester`, disabled: false };
      accounts.set(login, a);
      bySub.set(a.sub, a);
      return a;
    },
    disable(login) {
      const a = accounts.get(login);
      if (!a) throw new Error(`no account ${login}`);
      a.disabled = true;
    },
    async completeDevice(verificationUri, userCode, login) {
      const b = browser();
      // The code-entry page, then its confirmation page, then the sign-in form.
      const entry = await b.follow(b.request(verificationUri));
      const input = formOf(entry.html, entry.url);
      const confirmPage = await b.follow(b.request(input.action, { method: "POST", form: { ...input.fields, user_code: userCode } }));
      const confirm = formOf(confirmPage.html, confirmPage.url);
      const signInPage = await b.follow(b.request(confirm.action, { method: "POST", form: confirm.fields }));
      const done = await signInAt(b, signInPage, login);
      return done.html;
    },
    async authorize(authorizationUrl, login) {
      const b = browser();
      const signInPage = await b.follow(b.request(authorizationUrl));
      if (signInPage.location !== undefined) return new URL(signInPage.location);
      const done = await signInAt(b, signInPage, login);
      if (done.location === undefined) throw new Error(`the issuer did not redirect back: ${done.status} ${done.html.slice(0, 300)}`);
      return new URL(done.location);
    },
    async signIdToken(claims, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: "RS256", kid: jwk.kid! })
        .setIssuedAt(opts.issuedAtS ?? now)
        .setExpirationTime((opts.issuedAtS ?? now) + (opts.expiresInS ?? 600))
        .sign(privateKey);
    },
    async close() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      text += c;
      if (text.length > 64 * 1024) req.destroy(new Error("form too large"));
    });
    req.on("end", () => resolve(text));
    req.on("error", reject);
  });
}
