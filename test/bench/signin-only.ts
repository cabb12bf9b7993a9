import { report } from "./harness.js";
import { benchSignIn } from "./signin.js";

/** `npx tsx test/bench/signin-only.ts`: just the sign-in row of `npm run bench`. */
report(await benchSignIn());
