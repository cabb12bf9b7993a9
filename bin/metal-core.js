#!/usr/bin/env node
// metal-core from a bundle of its sources (see bundle.js): no tsx at run time.
import { bundled } from "./bundle.js";

const { runMetalCore } = await import(await bundled("metal-core", "edge/core/main.ts"));
process.exitCode = await runMetalCore(process.argv.slice(2));
