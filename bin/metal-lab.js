#!/usr/bin/env node
// metal-lab (what npm start runs) from a bundle of its sources (see bundle.js): no tsx at run time.
import { bundled } from "./bundle.js";

await import(await bundled("metal-lab", "edge/lab/main.ts"));
