import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
let fixture: PartitionFixture;
const m = cli();
let run: (argv: string[], env?: Record<string, string>) => ReturnType<typeof m.run>;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  run = (argv, env) => m.run(argv, { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken, ...env });
});
afterAll(() => fixture?.stopAll());

describe("metalctl network and ip", () => {
  it("allocates a child network, an IP in it, updates and frees both", async () => {
    const net = await run(["network", "allocate", "--project", "pa", "--partition", "p1", "--name", "backend", "-o", "json"]);
    expect(net.stderr).toBe("");
    const id = (JSON.parse(net.stdout) as { id: string }).id;
    const list = await run(["network", "list", "--project", "pa"]);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+PROJECT\s+PARTITION\s+TYPE\s+PREFIXES\s+IPS$/);
    expect(list.stdout).toMatch(new RegExp(`${id}\\s+backend\\s+pa\\s+p1\\s+child\\s+10\\.0\\.\\d+\\.0/24`));
    const all = await run(["network", "list", "--type", "super", "--no-headers"]);
    expect(all.stdout).toMatch(/^super\s+p1\s+super\s+10\.0\.0\.0\/16,2001:db8::\/48/);

    const ip = await run(["network", "ip", "create", "--project", "pa", "--network", id, "--name", "vip", "--type", "static", "-o", "json"]);
    expect(ip.stderr).toBe("");
    const addr = (JSON.parse(ip.stdout) as { ip: string }).ip;
    expect((await run(["ip", "list", "--project", "pa", "--no-headers"])).stdout).toMatch(new RegExp(`^${addr.replace(/\./g, "\\.")}\\s+vip\\s+${id}\\s+pa\\s+static`, "m"));
    // IPs can be named by their address.
    const renamed = await run(["network", "ip", "update", addr, "--project", "pa", "--name", "vip2"]);
    expect(renamed.stdout).toContain("vip2");
    expect((await run(["network", "ip", "free", addr, "--project", "pa"])).code).toBe(0);

    const upd = await run(["network", "update", id, "--project", "pa", "--description", "the backend", "-o", "json"]);
    expect(JSON.parse(upd.stdout)).toMatchObject({ description: "the backend", meta: { version: "2" } });
    expect((await run(["network", "free", id, "--project", "pa"])).code).toBe(0);
    expect((await run(["network", "describe", id, "--project", "pa"])).code).toBe(3);
  });

  it("creates and applies operator networks from a file", async () => {
    const { writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const f = join(m.configHome, "nets.yaml");
    writeFileSync(
      f,
      "id: internet\ntype: NETWORK_TYPE_EXTERNAL\nprefixes: [185.1.2.0/24]\ndestinationPrefixes: [0.0.0.0/0]\nnat: true\n---\nid: underlay\ntype: NETWORK_TYPE_UNDERLAY\npartition: p1\nprefixes: [10.255.0.0/22]\n",
    );
    const created = await run(["network", "apply", "-f", f, "--no-headers"]);
    expect(created.stderr).toBe("");
    expect(created.stdout).toMatch(/^internet\s+.*external\s+185\.1\.2\.0\/24/m);
    expect(created.stdout).toMatch(/^underlay\s+p1\s+underlay/m);
    writeFileSync(f, "id: internet\ndescription: the internet\n");
    const updated = await run(["network", "update", "-f", f, "-o", "json"]);
    expect(JSON.parse(updated.stdout)[0]).toMatchObject({ id: "internet", description: "the internet" });
    expect((await run(["network", "create", "--type", "external", "--id", "dmz", "--prefixes", "185.9.9.0/24"])).code).toBe(0);
    expect((await run(["network", "delete", "dmz"])).code).toBe(0);
  });
});

describe("metalctl masterdata, switches, capacity", () => {
  it("creates, lists and updates tenants and projects", async () => {
    expect((await run(["tenant", "create", "--id", "acme", "--name", "ACME", "--machine-quota", "10"])).code).toBe(0);
    const p = await run(["project", "create", "--tenant", "acme", "--name", "web", "-o", "json"]);
    expect(p.stderr).toBe("");
    const pid = (JSON.parse(p.stdout) as { meta: { id: string } }[])[0]!.meta.id;
    const list = await run(["project", "list", "--tenant", "acme"]);
    expect(list.stdout).toMatch(new RegExp(`^${pid}\\s+acme\\s+web`, "m"));
    expect((await run(["tenant", "ls", "--no-headers"])).stdout).toMatch(/^acme\s+ACME\s+machine=10/m);
    const edited = await run(["tenant", "edit", "acme", "-o", "json"], { EDITOR: "sed -i 's/name: ACME/name: ACME Corp/'" });
    expect(JSON.parse(edited.stdout)[0]).toMatchObject({ name: "ACME Corp", quotas: { machine: { max: 10 } } });
    expect((await run(["project", "describe", "nope"])).code).toBe(3);
  });

  it("lists switches, updates one, and reports port refusals", async () => {
    const list = await run(["switch", "list", "--sort-by", "id"]);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+PARTITION\s+RACK\s+OS\s+MODE\s+STATUS$/);
    expect(list.stdout).toMatch(/^leaf01\s+p1\s+r1/m);
    // Only ports with a machine behind them may be switched.
    const down = await run(["switch", "port", "down", "leaf01", "swp1"]);
    expect(down.code).toBe(5);
    expect(down.stderr).toMatch(/^failed precondition: no machine is connected/);
    expect((await run(["sw", "port", "down", "leaf01", "swp99"])).code).toBe(3);
    const upd = await run(["switch", "update", "leaf02", "--description", "spare", "-o", "json"]);
    expect(JSON.parse(upd.stdout)).toMatchObject({ id: "leaf02", description: "spare" });
  });

  it("shows partition capacity and firewalls", async () => {
    const w = await fixture.bootMachine("r1");
    const cap = await run(["partition", "capacity"]);
    expect(cap.stderr).toBe("");
    expect(cap.stdout.split("\n")[0]).toMatch(/^PARTITION\s+SIZE\s+ALLOCATED\s+ALLOCATABLE\s+FREE/);
    expect(cap.stdout).toMatch(/^p1\s+s1\s+0\s+1\s+/m);
    const json = await run(["partition", "capacity", "-o", "json"]);
    expect(JSON.parse(json.stdout)[0]).toMatchObject({ partition: "p1", size: "s1", allocatable: 1 });
    // The booted machine is cabled to leaf01 and leaf02, swp1 each.
    const cm = await run(["switch", "connected-machines", "--sort-by", "switch"]);
    expect(cm.stdout.split("\n")[0]).toMatch(/^SWITCH\s+PORT\s+MACHINE\s+MACHINE NIC\s+VRF$/);
    expect(cm.stdout).toMatch(new RegExp(`^leaf01\\s+swp1\\s+${w.id}\\s+eth0\\s+pxe$`, "m"));
    expect(cm.stdout).toMatch(new RegExp(`^leaf02\\s+swp1\\s+${w.id}\\s+eth1\\s+pxe$`, "m"));
    const cmJson = JSON.parse((await run(["switch", "connected-machines", "-o", "json"])).stdout) as { id: string; nics: { machineId: string }[] }[];
    expect(cmJson.find((s) => s.id === "leaf01")?.nics.map((n) => n.machineId)).toContain(w.id);
    const fits = await run(["filesystemlayout", "match", "s1-default", "--machine", w.id]);
    expect(fits.stdout.trim()).toBe(`s1-default fits machine ${w.id}`);
    expect(JSON.parse((await run(["filesystemlayout", "match", "s1-default", "--machine", w.id, "-o", "json"])).stdout)).toEqual({ fits: true, problems: [] });
    expect((await run(["firewall", "list"])).stdout.trim().split("\n")).toHaveLength(1);
    const { writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const img = join(m.configHome, "fw-image.yaml");
    writeFileSync(img, "id: firewall-ubuntu-3.0.20250101\nurl: http://images.example/fw.tar\nfeatures: [IMAGE_FEATURE_FIREWALL]\n");
    expect((await run(["image", "apply", "-f", img])).code).toBe(0);
    // The underlay of p1 (created by the operator-networks test above) is attached by the server.
    const fw = await run(["fw", "create", "--project", "pb", "--partition", "p1", "--size", "s1", "--image", "firewall-ubuntu-3", "--networks", fixture.primary.pb, "--id", w.id, "--hostname", "fw1"]);
    expect(fw.stderr).toBe("");
    expect(fw.stdout).toMatch(/fw1\s+pb\s+s1\s+firewall-ubuntu-3\.0\.20250101/);
    const fws = await run(["firewall", "list", "--no-headers"]);
    expect(fws.stdout.trim().split("\n")).toEqual([expect.stringContaining(w.id)]);
    expect((await run(["machine", "list", "--no-headers", "--hostname", "fw1"])).stdout).toContain(w.id);
    const reservations = await run(["size", "reservation", "list"]);
    expect(reservations.code).toBe(0);
  });
});
