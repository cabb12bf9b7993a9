import * as oidc from "openid-client";
import { describe, expect, it } from "vitest";
import { type AuthorizationCodeProof, browserFlow } from "../../cli/lib/oidc-login.js";
import { cli } from "./run-cli.js";

/**
 * metalctl login --browser's loopback listener (RFC 8252) against a hostile
 * local network: only the callback path with the flow's state is heard, an
 * answer that does not name the issuer (when it says it does) is refused, and
 * the listener is gone after the one answer.
 */
const ISSUER = "https://idp.example.test";

function configuration(issSupported: boolean): oidc.Configuration {
  return new oidc.Configuration({ issuer: ISSUER, authorization_endpoint: `${ISSUER}/auth`, token_endpoint: `${ISSUER}/token`, authorization_response_iss_parameter_supported: issSupported }, "metalctl");
}

/** Starts the flow; resolves with its authorization URL once printed, and the flow's outcome. */
async function start(issSupported: boolean): Promise<{ url: URL; flow: Promise<AuthorizationCodeProof> }> {
  let printed!: (u: URL) => void;
  const urlPrinted = new Promise<URL>((r) => (printed = r));
  const flow = browserFlow(
    configuration(issSupported),
    ["openid"],
    (text) => {
      const m = /https:\/\/\S+/.exec(text);
      if (m) printed(new URL(m[0]));
    },
    { METALCTL_NO_BROWSER: "1" } as never,
  );
  flow.catch(() => {});
  return { url: await urlPrinted, flow };
}

const callback = (url: URL, params: Record<string, string>, path = "/callback") => {
  const redirect = new URL(url.searchParams.get("redirect_uri")!);
  const u = new URL(path, redirect);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return fetch(u);
};

describe("the loopback listener", () => {
  it("ignores other paths and states, takes the one answer, and closes", async () => {
    const { url, flow } = await start(true);
    const state = url.searchParams.get("state")!;
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect((await callback(url, { state, code: "c", iss: ISSUER }, "/other")).status).toBe(404);
    expect((await callback(url, { state: "forged", code: "c", iss: ISSUER })).status).toBe(404);
    expect((await callback(url, { state, code: "the-code", iss: ISSUER })).status).toBe(200);
    const proof = await flow;
    expect(proof.code).toBe("the-code");
    expect(proof.codeVerifier).toMatch(/^[A-Za-z0-9_-]{43,128}$/);
    await expect(callback(url, { state, code: "again", iss: ISSUER })).rejects.toThrow();
  });

  it("refuses an answer without iss from an issuer that says it sends one (RFC 9207), and one naming another issuer", async () => {
    const a = await start(true);
    expect((await callback(a.url, { state: a.url.searchParams.get("state")!, code: "c" })).status).toBe(400);
    await expect(a.flow).rejects.toThrow(/another issuer/);
    const b = await start(false);
    expect((await callback(b.url, { state: b.url.searchParams.get("state")!, code: "c", iss: "https://evil.example.test" })).status).toBe(400);
    await expect(b.flow).rejects.toThrow(/another issuer/);
    const c = await start(false);
    expect((await callback(c.url, { state: c.url.searchParams.get("state")!, code: "ok" })).status).toBe(200);
    expect((await c.flow).code).toBe("ok");
  });
});

describe("metalctl login and the API URL", () => {
  const m = cli();

  it("refuses a plain-http API URL off this host before sending anything (the sign-in and the token would cross in the clear)", async () => {
    const r = await m.run(["login", "--api-url", "http://192.0.2.1:8080"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("metalctl login needs an https API URL");
  });
});
