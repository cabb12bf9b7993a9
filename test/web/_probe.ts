import { setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer } from "../helpers/server-launch.js";
import { buildConsoleOnce, launchChromium } from "./browser.js";
import { seedMachines } from "./console-load.js";

const build = await buildConsoleOnce();
const { server, stop } = await launchServer({ env: { METAL_WEB_DIR: build.outDir } });
const browser = await launchChromium();
await setUpPartition(server);
await seedMachines(server, 1000);
const page = await browser.newPage();
await page.goto(`${server.url}/metrics`);
for (let i = 0; i < 4; i++) {
  const r = await page.evaluate(async (t) => {
    const g = globalThis as any;
    const t0 = g.performance.now();
    const ctl = new AbortController();
    const res = await g.fetch("/metal.admin.v1.MachineService/Watch", {
      method: "POST",
      headers: { "content-type": "application/connect+proto", authorization: `Bearer ${t}`, "connect-protocol-version": "1" },
      body: new Uint8Array([0, 0, 0, 0, 0]),
      signal: ctl.signal,
    });
    const th = g.performance.now() - t0;
    const reader = res.body.getReader();
    const chunks: string[] = [];
    let total = 0;
    const stopAt = setTimeout(() => ctl.abort(), 4000);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        chunks.push(`${Math.round(g.performance.now() - t0)}:${value.length}`);
      }
    } catch {}
    clearTimeout(stopAt);
    return { th: Math.round(th), total, n: chunks.length, first: chunks.slice(0, 5), last: chunks.slice(-5) };
  }, server.adminToken);
  console.log(JSON.stringify(r));
}
await browser.close();
await stop();
