/** The sign-in page's "Sign in with <issuer>" button, and the handling of the issuer's answer (web/oidc.ts). */
import { useEffect, useState } from "react";
import type { SignInServiceConfigResponse } from "../../gen/metal/api/v1/signin_pb.js";
import { finishSignIn, isCallback, signInConfig, startSignIn } from "../oidc.js";

/** Shown only when metal-api trusts an issuer. */
export function OidcSignInButton({ onError }: { onError: (err: unknown) => void }) {
  const [config, setConfig] = useState<SignInServiceConfigResponse | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    let live = true;
    void signInConfig().then((c) => live && setConfig(c));
    return () => {
      live = false;
    };
  }, []);
  if (!config) return null;
  const host = (() => {
    try {
      return new URL(config.issuer).host;
    } catch {
      return config.issuer;
    }
  })();
  return (
    <div className="oidc-signin">
      <button
        type="button"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          startSignIn(config).catch((err: unknown) => {
            setBusy(false);
            onError(err);
          });
        }}
      >
        Sign in with {host}
      </button>
    </div>
  );
}

/**
 * On the callback page: exchanges the issuer's code once and hands the metal
 * token to `onToken` (the same path as a pasted token). True while it runs.
 */
export function useOidcCallback(onToken: (token: string) => Promise<void>, onError: (err: unknown) => void): boolean {
  const [pending, setPending] = useState(isCallback);
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs once, at load; the callback URL is consumed by it.
  useEffect(() => {
    if (!pending) return;
    finishSignIn()
      .then(onToken, onError)
      .finally(() => setPending(false));
  }, []);
  return pending;
}
