import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { type Command, Flags } from "@oclif/core";
import { createTransport } from "../../client/transport.js";
import { SignInService } from "../../gen/metal/api/v1/signin_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { apiUrl, MetalCommand } from "../base.js";
import { browserFlow, describeOidcError, deviceFlow, discover, isLoopback } from "../lib/oidc-login.js";
import { isoTime, UsageError } from "../output.js";

/**
 * `metalctl login`: with --token, checks that token and stores it (as
 * before); otherwise signs in at the control plane's OpenID Connect issuer
 * (docs/signin.md) and stores the metal token it gets in the context.
 */
class Login extends MetalCommand<typeof Login> {
  static override summary = "sign in (OpenID Connect) or store a token, in the current context";
  static override description =
    'Without --token: signs in at the identity provider the control plane trusts, by default with the device flow (prints a URL and a code to enter in any browser), with --browser through this host\'s browser (authorization code with PKCE, a redirect to 127.0.0.1). The metal token it gets (roles from your memberships, bounded life) is stored in the current context (created as "default" if there is none). With --token: checks that token and stores it.';
  static override examples = ["metalctl login --api-url https://metal.example", "metalctl login --browser", "metalctl login --api-url https://metal.example --token $(cat .metal/admin-token)"];
  static override flags = {
    browser: Flags.boolean({ description: "sign in through a browser on this host (authorization code with PKCE) instead of the device flow" }),
  };

  async run() {
    if (this.global.token) {
      const user = (await this.client(UserService).get({})).user!;
      const name = this.store(this.global.token);
      this.out(`logged in as ${user.subject}, token stored in context "${name}"\n`);
      return;
    }
    const { url } = this.target();
    // The exchange carries the proof of sign-in and brings back a token: never in the clear, but on this host.
    const parsed = new URL(url);
    if (parsed.protocol !== "https:" && !isLoopback(parsed)) throw new UsageError(`metalctl login needs an https API URL (http only on this host): ${url} would carry the sign-in and the token in the clear`);
    // The sign-in calls are public: no token goes with them (an old, expired one would only confuse).
    const signIn = createClient(SignInService, createTransport({ baseUrl: url, protocol: "connect", binary: true }));
    const settings = await signIn.config({});
    if (!settings.enabled) throw new UsageError(`sign-in is not configured at ${url}; ask an operator for a token and use metalctl login --token`);
    const say = (t: string) => this.err(t);
    let response: Awaited<ReturnType<typeof signIn.exchange>>;
    try {
      const config = await discover(settings);
      if (this.flags.browser) {
        const proof = await browserFlow(config, settings.scopes, say, this.env);
        response = await signIn.exchange({ proof: { case: "authorizationCode", value: proof }, description: "metalctl login --browser" });
      } else {
        const idToken = await deviceFlow(config, settings.scopes, say);
        response = await signIn.exchange({ proof: { case: "idToken", value: idToken }, description: "metalctl login" });
      }
    } catch (err) {
      const refusal = describeOidcError(err);
      if (refusal) throw new ConnectError(refusal, Code.PermissionDenied);
      throw err;
    }
    const name = this.store(response.secret);
    const expires = response.token?.expiresAt ? ` until ${isoTime(response.token.expiresAt)}` : "";
    this.out(`logged in as ${response.user}${response.created ? " (new user)" : ""}${expires}, token stored in context "${name}"\n`);
  }

  /** The secret goes into --context, else the current context, else a new "default" (made current). */
  private store(secret: string): string {
    const config = this.readConfig();
    const name = this.global.context ?? config.current ?? "default";
    const ctx = config.contexts[name] ?? {};
    ctx.token = secret;
    if (this.global["api-url"]) ctx.url = apiUrl(this.global["api-url"], "--api-url");
    config.contexts[name] = ctx;
    config.current ??= name;
    this.writeConfig(config);
    return name;
  }
}

class Logout extends MetalCommand<typeof Logout> {
  static override summary = "revoke the current context's token and remove it from the context";
  static override description = "The token is revoked at the control plane first (so a copy of it stops working too); one that is already expired or revoked is just removed.";
  async run() {
    const config = this.readConfig();
    const name = this.global.context ?? config.current;
    const ctx = name === undefined ? undefined : config.contexts[name];
    if (!name || !ctx?.token) throw new UsageError(`no token stored in ${name ? `context "${name}"` : "any context"}`);
    try {
      const user = (await this.client(UserService).get({})).user!;
      await this.client(TokenService).revoke({ id: user.token!.id });
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.Unauthenticated)) throw err;
    }
    delete ctx.token;
    this.writeConfig(config);
    this.out(`logged out, token revoked and removed from context "${name}"\n`);
  }
}

export const LOGIN_COMMANDS: Record<string, typeof Command> = { login: Login, logout: Logout };
