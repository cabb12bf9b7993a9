#!/usr/bin/env node
// metal-hammer runs from a bundle of its sources (see bundle.js): no tsx at run time.
// The real binary's bundle never contains the simulator; --simulated (or METAL_HAMMER_SIMULATED=1)
// loads a bundle of its own that runs the agent on a simulated machine.
import { bundled } from "./bundle.js";

const argv = process.argv.slice(2);
const simulated = argv.includes("--simulated") || ["1", "true"].includes(process.env.METAL_HAMMER_SIMULATED ?? "");
const rest = argv.filter((a) => a !== "--simulated");
const run = simulated ? (await import(await bundled("metal-hammer-sim", "edge/sim/hammer-main.ts"))).runSimulatedHammer : (await import(await bundled("metal-hammer", "edge/hammer/main.ts"))).runMetalHammer;
process.exitCode = await run(rest);
