// The switch side of the fan-out bench, in a process of its own: real
// switches (and whoever changes their config) are other machines, so their
// work must not share the control plane's event loop. Runs FANOUT_SWITCHES
// metal-cores on simulated switches and reports every successful sync that
// changed files, with its wall-clock time, to the parent over IPC. On
// { register: ports } it registers every switch again with that many ports
// (the config change of a round) and answers with each call's latency; the
// bench runs a second instance as the "changer" that only does that, so the
// switches' event loop is not also the one that makes the change.
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createTransport } from "../../client/transport.js";
import { MetalCore } from "../../edge/core/metal-core.js";
import { SimSwitch } from "../../edge/sim/switch.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const count = Number(env("FANOUT_SWITCHES"));
const rackOf = (i: number) => `r${Math.floor(i / 2)}`;
const ids = Array.from({ length: count }, (_, i) => `leaf${String(i).padStart(3, "0")}`);
const cores: MetalCore[] = [];
// FANOUT_ROLE=changer: no metal-cores, only the Register calls of the rounds.
for (let i = 0; i < (process.env.FANOUT_ROLE === "changer" ? 0 : count); i++) {
  const id = ids[i]!;
  // FRR's parser is a process per check; the fan-out is measured, not 100 FRR start-ups.
  const sim = new SimSwitch({ id, root: join(env("FANOUT_ROOT"), id), frontPorts: 4, frrCheck: false });
  const core = new MetalCore({ url: env("FANOUT_URL"), token: env("FANOUT_TOKEN"), partition: "p1", rack: rackOf(i), os: sim, timing: { heartbeatMs: 600_000, backoff: { initialMs: 100 } } });
  core.onSync((s) => {
    if (s.changed && s.error === "") process.send!({ id, at: performance.timeOrigin + performance.now() });
  });
  core.start();
  cores.push(core);
}
const switches = createClient(SwitchService, createTransport({ baseUrl: env("FANOUT_URL"), token: env("FANOUT_TOKEN") }));
process.on("message", async (m: "stop" | { register: number }) => {
  if (typeof m === "object") {
    const latencies = await Promise.all(
      ids.map(async (id, i) => {
        const t = performance.now();
        await switches.register({ partition: "p1", id, rack: rackOf(i), nics: Array.from({ length: m.register }, (_, n) => ({ name: `swp${n + 1}` })) });
        return performance.now() - t;
      }),
    );
    process.send!({ registered: latencies });
  }
  if (m === "stop") {
    await Promise.all(cores.map((c) => c.stop()));
    process.exit(0);
  }
});
