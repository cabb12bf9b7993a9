#!/usr/bin/env node
// metal-backup runs from a bundle of its sources (see bundle.js): no tsx at run time.
import { bundled } from "./bundle.js";

await import(await bundled("metal-backup", "server/backup/main.ts"));
