import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../helpers/eventually.js";
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

describe("metalctl machine", () => {
  it("lists waiting machines as a table and as proto JSON", async () => {
    const a = await fixture.bootMachine("r1");
    const b = await fixture.bootMachine("r2");
    const table = await run(["machine", "list"]);
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+LAST EVENT\s+WHEN\s+AGE\s+HOSTNAME\s+PROJECT\s+SIZE\s+IMAGE\s+PARTITION\s+RACK$/);
    expect(lines).toHaveLength(3);
    const rowA = lines.find((l) => l.startsWith(a.id))!;
    expect(rowA).toMatch(/Waiting\s+\d+s\s+s1\s+p1\s+r1$/);
    const json = await run(["ms", "ls", "-o", "json", "--sort-by", "rack:desc"]);
    const parsed = JSON.parse(json.stdout) as { id: string; rack: string; size: string; waiting: boolean; events: { log: { type: string }[] } }[];
    // JSON is the server's order (by id); --sort-by applies to tables only.
    expect(parsed.map((x) => x.id).sort()).toEqual([a.id, b.id].sort());
    expect(parsed.find((x) => x.id === b.id)).toMatchObject({ rack: "r2", size: "s1", waiting: true });
    expect(parsed[0]!.events.log[0]!.type).toBe("PROVISIONING_EVENT_TYPE_WAITING");
    const sorted = await run(["machine", "list", "--sort-by", "rack:desc", "--no-headers"]);
    expect(sorted.stdout.split("\n")[0]).toContain(b.id);
    const filtered = await run(["machine", "list", "--rack", "r2", "--no-headers"]);
    expect(filtered.stdout.trim().split("\n")).toEqual([expect.stringContaining(b.id)]);
  });

  it("allocates, shows events, locks with an emoji, and frees", async () => {
    const waiting = await fixture.bootMachine("r1");
    const created = await run(["machine", "create", "--project", "pb", "--partition", "p1", "--size", "s1", "--image", "debian-12", "--hostname", "web1", "--networks", fixture.primary.pb, "--id", waiting.id]);
    expect(created.stderr).toBe("");
    // The Create response carries no event log, so the row has an age but no last event.
    expect(created.stdout).toMatch(new RegExp(`^${waiting.id}\\s+.*\\d+s\\s+web1\\s+pb\\s+s1\\s+debian-12\\S*\\s+p1\\s+r1$`, "m"));
    expect((await waiting.allocation)?.hostname).toBe("web1");

    const described = await run(["machine", "describe", waiting.id, "-o", "yaml"]);
    expect(described.stdout).toContain("hostname: web1");
    expect(described.stdout).toContain(`project: pb`);

    const logs = await run(["machine", "logs", waiting.id, "--project", "pb"]);
    expect(logs.stdout.split("\n")[0]).toMatch(/^TIME\s+EVENT\s+MESSAGE$/);
    expect(logs.stdout).toMatch(/Preparing[\s\S]*Registering[\s\S]*Waiting/);

    const tenantView = await run(["machine", "list", "--project", "pb", "-o", "wide", "--no-headers"]);
    expect(tenantView.stdout).toContain("web1");
    expect(tenantView.stdout).toMatch(/10\.0\.\d+\.\d+/);

    const locked = await run(["machine", "lock", waiting.id, "--reason", "maintenance window"]);
    expect(locked.code).toBe(0);
    expect(locked.stdout).toContain("🔒");
    const refused = await run(["machine", "free", waiting.id]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/^failed precondition: .+\n$/);
    expect((await run(["machine", "lock", waiting.id, "--remove"])).code).toBe(0);

    const freed = await run(["machine", "free", waiting.id]);
    expect(freed.stderr).toBe("");
    expect(freed.code).toBe(0);
    const after = JSON.parse((await run(["machine", "describe", waiting.id, "-o", "json"])).stdout) as { allocation?: unknown };
    expect(after.allocation).toBeUndefined();
  });

  it("follows events with logs --watch until the awaited one happens", async () => {
    const w = await fixture.bootMachine("r1");
    const watching = m.start(["machine", "logs", w.id, "--watch", "--until", "crashed", "--interval", "100ms"], { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken });
    // The first poll has printed the log: the crash below comes in a later batch.
    await eventually("the first poll to print the log", () => watching.output().stdout.includes("Waiting"));
    const { EventService } = await import("../../gen/metal/infra/v1/event_pb.js");
    const { ProvisioningEventType } = await import("../../gen/metal/api/v1/machine_pb.js");
    await server.client(EventService, fixture.infraToken).send({ partition: "p1", events: [{ machineId: w.id, type: ProvisioningEventType.CRASHED, message: "hello" }] });
    const r = await watching.done;
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^TIME\s+EVENT\s+MESSAGE$/);
    expect(lines[1]).toMatch(/PXE Booting/);
    expect(lines[lines.length - 1]).toMatch(/Crashed\s+hello$/);
    // Only the first batch has headers.
    expect(lines.filter((l) => l.startsWith("TIME"))).toHaveLength(1);
  });

  it("suggests a size from a machine's hardware, as a document size create takes", async () => {
    const w = await fixture.bootMachine("r2");
    const r = await run(["size", "suggest", w.id, "--id", "s2"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^id: s2\n/);
    expect(r.stdout).toContain("SIZE_CONSTRAINT_TYPE_CORES");
  });

  it("queues BMC commands and lists them", async () => {
    const w = await fixture.bootMachine("r2");
    const r = await run(["machine", "power", "reset", w.id]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(new RegExp(`^${w.id}\\s+RESET\\s+pending`, "m"));
    const led = await run(["machine", "identify", "on", w.id, "--description", "find me", "-o", "json"]);
    expect(JSON.parse(led.stdout)).toMatchObject({ machineId: w.id, status: "BMC_COMMAND_STATUS_PENDING" });
    const cmds = await run(["machine", "commands", w.id, "--no-headers"]);
    expect(cmds.stdout.trim().split("\n")).toHaveLength(2);
  });

  it("says not found, permission denied and invalid argument in one line with distinct exit codes", async () => {
    const missing = await run(["machine", "describe", "00000000-0000-0000-0000-000000000000"]);
    expect(missing).toMatchObject({ code: 3, stdout: "", stderr: 'machine "00000000-0000-0000-0000-000000000000" not found\n' });

    const { TokenService } = await import("../../gen/metal/admin/v1/token_pb.js");
    const viewer = (await server.client(TokenService, server.adminToken).create({ subject: "someone", roles: { projectRoles: { pa: 1 } } })).secret;
    const denied = await run(["machine", "list", "--project", "pb"], { METALCTL_API_TOKEN: viewer });
    expect(denied.code).toBe(4);
    expect(denied.stderr).toMatch(/^permission denied: .+\n$/);
    const noProject = await run(["machine", "list"], { METALCTL_API_TOKEN: viewer });
    expect(noProject.code).toBe(4);
    expect(noProject.stderr).toMatch(/give --project or set one in the context\)\n$/);
    const adminOnly = await run(["machine", "power", "on", "x"], { METALCTL_API_TOKEN: viewer });
    expect(adminOnly.code).toBe(4);

    const bad = await run(["machine", "create", "--project", "pb", "--partition", "p1", "--size", "s1", "--image", "debian-12", "--userdata", "x".repeat(40_000)]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^invalid argument: .+\n$/);

    const usage = await run(["machine", "describe"]);
    expect(usage.code).toBe(2);
    const unknown = await run(["machine", "frobnicate"]);
    expect(unknown).toMatchObject({ code: 2, stderr: 'unknown command "machine frobnicate"; see metalctl --help\n' });
    const noAuth = await run(["machine", "list"], { METALCTL_API_TOKEN: "" });
    expect(noAuth.code).toBe(4);
    expect(noAuth.stderr).toMatch(/^unauthenticated: /);
  });

  it("shows the request with --debug", async () => {
    const r = await run(["partition", "list", "--debug"]);
    expect(r.stderr).toContain("> POST " + server.url + "/metal.api.v1.PartitionService/List");
    expect(r.stderr).toMatch(/< ok in \d+ ms/);
  });
});
