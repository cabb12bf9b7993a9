import { report } from "./harness.js";
import { benchVmBoot } from "./vm-boot.js";

/** `npx tsx test/bench/vm-boot-only.ts`: just the VM rows of `npm run bench` (root, QEMU; about 10 minutes under TCG). */
report(await benchVmBoot());
