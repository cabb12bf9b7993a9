#!/usr/bin/env node
// metal-bmc from a bundle of its sources (see bundle.js): no tsx at run time.
import { bundled } from "./bundle.js";

const { runMetalBmc } = await import(await bundled("metal-bmc", "edge/bmc/main.ts"));
process.exitCode = await runMetalBmc(process.argv.slice(2));
