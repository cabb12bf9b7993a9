import type { SignInServiceExchangeRequest } from "../../gen/metal/api/v1/signin_pb.js";
import { MAX_ID_TOKEN_BYTES } from "../auth/oidc/issuer.js";
import type { Proof } from "../domain/signin.js";
import { validator } from "./validator.js";

/** RFC 7636: a verifier is 43 to 128 unreserved characters. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
const MAX_CODE = 2048;
const MAX_REDIRECT_URI = 1024;

/** One proof, each part bounded and well-formed; what it proves is the issuer's and the use case's business. */
export function validateSignInExchange(req: SignInServiceExchangeRequest): Proof {
  const v = validator();
  v.text("description", req.description, 256);
  const p = req.proof;
  if (p.case === undefined) {
    v.add("proof", "is required: an id_token or an authorization_code").check();
    throw new Error("unreachable");
  }
  if (p.case === "idToken") {
    if (p.value === "") v.add("id_token", "is required");
    else if (p.value.length > MAX_ID_TOKEN_BYTES) v.add("id_token", `must be at most ${MAX_ID_TOKEN_BYTES} characters`);
    else if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(p.value)) v.add("id_token", "is not a compact JWT");
    v.check();
    return { idToken: p.value };
  }
  const { code, codeVerifier, redirectUri } = p.value;
  if (code === "") v.add("authorization_code.code", "is required");
  else if (code.length > MAX_CODE || !/^[\x21-\x7e]+$/.test(code)) v.add("authorization_code.code", `must be up to ${MAX_CODE} printable characters`);
  if (!CODE_VERIFIER.test(codeVerifier)) v.add("authorization_code.code_verifier", "must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_', '~' (RFC 7636)");
  if (redirectUri === "") v.add("authorization_code.redirect_uri", "is required");
  else if (redirectUri.length > MAX_REDIRECT_URI) v.add("authorization_code.redirect_uri", `must be at most ${MAX_REDIRECT_URI} characters`);
  else {
    let u: URL | undefined;
    try {
      u = new URL(redirectUri);
    } catch {
      v.add("authorization_code.redirect_uri", "is not a URL");
    }
    if (u && ((u.protocol !== "https:" && u.protocol !== "http:") || u.search !== "" || u.hash !== "")) v.add("authorization_code.redirect_uri", "must be an http(s) URL without query or fragment");
  }
  v.check();
  return { code, codeVerifier, redirectUri };
}
