#!/usr/bin/env node
// metalctl runs from a bundle of its sources (see bundle.js): its start-up is
// most of `metalctl machine list`.
import { bundled } from "./bundle.js";

const { runMetalctl } = await import(await bundled("metalctl", "cli/main.ts"));
process.exitCode = await runMetalctl(process.argv.slice(2));
