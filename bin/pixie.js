#!/usr/bin/env node
// pixie from a bundle of its sources (see bundle.js): no tsx at run time.
import { bundled } from "./bundle.js";

const { runPixie } = await import(await bundled("pixie", "edge/pixie/main.ts"));
process.exitCode = await runPixie(process.argv.slice(2));
