#!/usr/bin/env node
// Runs the TypeScript sources directly (no build step): tsx registers the loader.
import { register } from "tsx/esm/api";

register();
// The real binary never loads the simulator; --simulated (or METAL_HAMMER_SIMULATED=1) runs the agent on a simulated machine.
const argv = process.argv.slice(2);
const simulated = argv.includes("--simulated") || ["1", "true"].includes(process.env.METAL_HAMMER_SIMULATED ?? "");
const rest = argv.filter((a) => a !== "--simulated");
const run = simulated ? (await import("../edge/sim/hammer-main.ts")).runSimulatedHammer : (await import("../edge/hammer/main.ts")).runMetalHammer;
process.exitCode = await run(rest);
