#!/usr/bin/env node
// masterdata-api runs from a bundle of its sources (see bundle.js): no tsx at run time.
import { bundled } from "./bundle.js";

await import(await bundled("masterdata-api", "server/masterdata/main.ts"));
