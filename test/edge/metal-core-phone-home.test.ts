import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRouterTransport } from "@connectrpc/connect";
import { afterEach, expect, it } from "vitest";
import { MetalCore } from "../../edge/core/metal-core.js";
import type { LldpSighting } from "../../edge/core/switch-os.js";
import { SimSwitch } from "../../edge/sim/switch.js";
import { ProvisioningEventType } from "../../gen/metal/api/v1/machine_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { eventually } from "../helpers/eventually.js";

/** Counts LLDP polls, so a batch can be placed after the poll that no longer saw a machine. */
class PolledSwitch extends SimSwitch {
  polls = 0;
  override async lldpSightings(): Promise<LldpSighting[]> {
    this.polls++;
    return super.lldpSightings();
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

it("reports only machines the newest LLDP poll saw: an OS gone since is not phoned home for later", async () => {
  const root = await mkdtemp(join(tmpdir(), "metal-core-phone-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const sim = new PolledSwitch({ id: "leaf01", root });
  const batches: { afterPoll: number; ids: string[] }[] = [];
  // Only the event service answers; the switch session is refused and retried slowly, which this test does not need.
  const transport = createRouterTransport((router) => {
    router.service(EventService, {
      send(req) {
        expect(req.events.every((e) => e.type === ProvisioningEventType.PHONED_HOME)).toBe(true);
        batches.push({ afterPoll: sim.polls, ids: req.events.map((e) => e.machineId) });
        return { processed: req.events.length, failed: [] };
      },
    });
  });
  const core = new MetalCore({
    url: "http://unused",
    token: "unused",
    partition: "p1",
    rack: "r1",
    os: sim,
    transport,
    timing: { lldpPollMs: 5, phoneHomeMs: 60, backoff: { initialMs: 10_000, maxMs: 10_000 } },
  });
  core.start();
  cleanups.push(() => core.stop());

  const freed = randomUUID();
  sim.setNeighbour("swp1", freed, "provisioned since 2026-12-01T11:00:00Z");
  const first = await eventually("a batch with the installed machine", () => batches.find((b) => b.ids.includes(freed)));
  // Polls after that batch saw the machine again; then its OS goes away (freed, rebooting) before the next batch.
  await eventually("two more polls", () => sim.polls >= first.afterPoll + 2);
  sim.removeNeighbour("swp1");
  const goneAfter = sim.polls;
  const other = randomUUID();
  sim.setNeighbour("swp2", other, "provisioned since 2026-12-01T11:05:00Z");
  await eventually("a batch after the machine went away", () => batches.find((b) => b.afterPoll > goneAfter && b.ids.includes(other)));
  const late = batches.filter((b) => b.afterPoll > goneAfter);
  expect(late.length).toBeGreaterThan(0);
  for (const b of late) expect(b.ids).not.toContain(freed);
});
