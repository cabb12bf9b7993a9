import { randomUUID } from "node:crypto";
import { SignInService } from "../../gen/metal/api/v1/signin_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { startTestIdp } from "../helpers/oidc-provider.js";
import { launchServer } from "../helpers/server-launch.js";
import { type Comparison, type Measurement, measure } from "./harness.js";

const ROUNDS = 3;
const PER_ROUND = 200;

const best = (rounds: Measurement[]) => rounds.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));

/**
 * The sign-in round trip (docs/signin.md): SignInService.Exchange of a fresh
 * ID token for a metal token (signature against the issuer's cached keys,
 * the user's tenant and memberships from masterdata, a token row written
 * and signed), for a user that exists already. The device flow itself is
 * the person's time and the issuer's, not measured. Beside it, the raw
 * baseline of the same run: UserService.Get with a metal token (verify a
 * token, read its row), the cheapest authenticated call.
 */
export async function benchSignIn(): Promise<Comparison[]> {
  const idp = await startTestIdp();
  const launched = await launchServer({ env: { METAL_OIDC_ISSUER: idp.issuer, METAL_OIDC_CLIENT_ID: idp.clientId } });
  try {
    const { server } = launched;
    const signIn = server.client(SignInService);
    const claims = { iss: idp.issuer, aud: idp.clientId, sub: "sub-bench", email: "bench@example.test", email_verified: true };
    // ID tokens are signed beforehand: the issuer's work is not the control plane's. Each is good once, and
    // tokens signed within one second with the same claims are the same bytes: a jti tells them apart.
    const tokens = await Promise.all(Array.from({ length: ROUNDS * PER_ROUND + 50 }, () => idp.signIdToken({ ...claims, jti: randomUUID() })));
    let next = 0;
    const exchange = () => signIn.exchange({ proof: { case: "idToken", value: tokens[next++]! } });
    const first = await exchange();
    const whoami = server.client(UserService, first.secret);
    await measure("warmup exchange", 49, 1, exchange);
    await measure("warmup whoami", 50, 1, () => whoami.get({}));
    const subject: Measurement[] = [];
    const baseline: Measurement[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      subject.push(await measure("SignInService.Exchange (ID token -> metal token)", PER_ROUND, 1, exchange));
      baseline.push(await measure("UserService.Get (metal token)", PER_ROUND, 1, () => whoami.get({})));
    }
    return [{ what: "sign-in round trip: ID token exchanged for a metal token, 1 client, vs UserService.Get", subject: best(subject), baseline: best(baseline) }];
  } finally {
    await launched.stop();
    await idp.close();
  }
}
