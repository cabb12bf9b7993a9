import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService as AdminMachineService } from "../../gen/metal/admin/v1/machine_pb.js";
import { MachineService, MachineState } from "../../gen/metal/api/v1/machine_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

let server: TestServer;
let fixture: PartitionFixture;
const home = mkdtempSync(join(tmpdir(), "metalctl-watch-"));
const children: ChildProcessWithoutNullStreams[] = [];

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
});
afterAll(() => {
  fixture?.stopAll();
  for (const c of children) c.kill();
  rmSync(home, { recursive: true, force: true });
});

/**
 * `metalctl machine list --watch` as a user runs it, the real binary with its
 * output in a pipe (not a terminal: one line per change). It never ends on
 * its own; the test stops the process it started.
 */
function watchList(args: string[]): { stdout: () => string; stop: () => void } {
  const child = spawn(process.execPath, [join(import.meta.dirname, "../../bin/metalctl.js"), "machine", "list", "--watch", ...args], {
    env: { HOME: home, XDG_CONFIG_HOME: home, PATH: process.env.PATH, METAL_DATA_DIR: join(home, "no-lab"), METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken },
  });
  children.push(child);
  let out = "";
  child.stdout.on("data", (d: Buffer) => void (out += d.toString("utf8")));
  child.stderr.on("data", (d: Buffer) => void (out += d.toString("utf8")));
  return { stdout: () => out, stop: () => void child.kill() };
}

const allocate = (machineId: string) =>
  server.client(MachineService, server.adminToken).create({ project: "pa", partition: "p1", size: "s1", image: "debian-12", name: "watched", hostname: "watched", networks: [fixture.primary.pa], machineId });

describe("metalctl machine list --watch", () => {
  it("prints the table, then one line per change in the table's columns; a project's list sees a freed machine go", async () => {
    const w = await fixture.bootMachine("r1");
    const ops = watchList([]);
    const tenant = watchList(["--project", "pa"]);
    // The binary may be bundled on its first start: a generous wait.
    await eventually("the operator's table", () => ops.stdout().includes(w.id), scaled(60_000));
    await eventually("the project's table", () => /^ID\s/m.test(tenant.stdout()), scaled(60_000));
    expect(ops.stdout()).toMatch(/^ID\s+LAST EVENT/m);
    expect(tenant.stdout()).not.toContain(w.id);

    await allocate(w.id);
    const line = (out: string, kind: string) => out.split("\n").find((l) => l.startsWith(`${kind} `) && l.includes(w.id));
    const allocated = await eventually("the allocation on the operator's list", () => line(ops.stdout(), "allocated"));
    expect(allocated).toMatch(/watched\s+pa\s+s1/);
    await eventually("the allocation on the project's list", () => line(tenant.stdout(), "allocated"));

    await server.client(AdminMachineService, server.adminToken).setState({ id: w.id, state: MachineState.TAINTED, reason: "watched" });
    await eventually("the taint", () =>
      ops
        .stdout()
        .split("\n")
        .some((l) => l.startsWith("updated ") && l.includes(w.id) && l.includes("🚧")),
    );
    await server.client(AdminMachineService, server.adminToken).setState({ id: w.id, state: MachineState.AVAILABLE, reason: "" });
    await server.client(MachineService, server.adminToken).delete({ id: w.id, project: "pa" });
    // The operator still sees the machine, free; the project sees it go.
    await eventually("the free on the operator's list", () => line(ops.stdout(), "freed"));
    await eventually("the machine leaving the project's list", () => tenant.stdout().split("\n").includes(`gone       ${w.id}`));
    ops.stop();
    tenant.stop();
  });
});
