import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { generateKey } from "../helpers/ssh-client.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { cli } from "./run-cli.js";

let server: TestServer;
let fixture: PartitionFixture;
let sshLike: Server;
let sshPort: number;
const m = cli();
const admin = () => ({ METALCTL_API_URL: server.url, METALCTL_API_TOKEN: server.adminToken });

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
  // Something that answers, but not in HTTP: what metalctl meets when pointed at the SSH console port.
  sshLike = createServer((s) => s.end("SSH-2.0-OpenSSH_9.6\r\n"));
  await new Promise<void>((r) => sshLike.listen(0, "127.0.0.1", () => r()));
  sshPort = (sshLike.address() as { port: number }).port;
});
afterAll(() => {
  fixture?.stopAll();
  sshLike?.close();
});

async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

const tokenFor = async (projectRoles: Record<string, ProjectRole>) =>
  (await server.client(TokenService, server.adminToken).create({ subject: `tenant-${Object.keys(projectRoles).join("-")}`, roles: { projectRoles } })).secret;

async function allocate(project: "pa" | "pb", hostname: string): Promise<string> {
  const w = await fixture.bootMachine("r1");
  const r = await m.run(
    ["machine", "create", "--project", project, "--partition", "p1", "--size", "s1", "--image", "debian-12", "--hostname", hostname, "--networks", fixture.primary[project], "--id", w.id],
    admin(),
  );
  expect(r.stderr).toBe("");
  return w.id;
}

describe("metalctl errors", () => {
  it("prints a refusal's class once", async () => {
    const viewer = await tokenFor({ pa: ProjectRole.VIEWER });
    const r = await m.run(["machine", "list", "--project", "pb"], { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: viewer });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^permission denied: \S/);
    expect(r.stderr).not.toMatch(/permission denied: permission denied/);
  });

  it("version: exit code 7 and the address when the control plane cannot be reached", async () => {
    const url = await deadUrl();
    const r = await m.run(["version"], { METALCTL_API_URL: url });
    expect(r.code).toBe(7);
    expect(r.stdout).toBe("client: metalctl 0.1.0\n");
    expect(r.stderr).toBe(`unavailable: cannot reach the control plane at ${url}: connect ECONNREFUSED ${url.slice("http://".length)}\n`);
    const ok = await m.run(["version"], admin());
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^client: metalctl \S+\nserver: \S+/);
  });

  it("takes host:port without a scheme, refuses other schemes with exit code 2", async () => {
    const hostPort = server.url.replace(/^http:\/\//, "");
    const r = await m.run(["partition", "list", "--api-url", hostPort], { METALCTL_API_TOKEN: server.adminToken });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const env = await m.run(["version"], { METALCTL_API_URL: hostPort });
    expect(env.code).toBe(0);
    const ftp = await m.run(["version", "--api-url", "ftp://127.0.0.1:8080"]);
    expect(ftp).toMatchObject({ code: 2, stderr: '--api-url: "ftp://127.0.0.1:8080" is not an http:// or https:// URL\n' });
    const garbage = await m.run(["machine", "list", "--api-url", "http://exa mple:80"]);
    expect(garbage).toMatchObject({ code: 2, stderr: '--api-url: "http://exa mple:80" is not a URL like http://127.0.0.1:8080\n' });
  });

  it("says when the address does not speak HTTP (the SSH port), with the unreachable exit code", async () => {
    const r = await m.run(["machine", "list", "--api-url", `127.0.0.1:${sshPort}`], { METALCTL_API_TOKEN: "x" });
    expect(r.code).toBe(7);
    expect(r.stderr).toBe(`unavailable: the server at http://127.0.0.1:${sshPort} does not speak HTTP; is this the API address? (metal-api listens on 127.0.0.1:8080 unless METAL_LISTEN says otherwise)\n`);
  });
});

describe("a tenant's machine commands without --project", () => {
  it("find the project through the token: its one project, or the one of several that holds the machine", async () => {
    const id = await allocate("pb", "tenant1");
    const one = { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: await tokenFor({ pb: ProjectRole.EDITOR }) };
    const updated = await m.run(["machine", "update", id, "--description", "set by the tenant", "-o", "json"], one);
    expect(updated.stderr).toBe("");
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ id, allocation: { project: "pb", description: "set by the tenant" } });
    const described = await m.run(["machine", "describe", id, "-o", "json"], one);
    expect(described.code).toBe(0);
    const logs = await m.run(["machine", "logs", id], one);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain("Waiting");

    const two = { METALCTL_API_URL: server.url, METALCTL_API_TOKEN: await tokenFor({ pa: ProjectRole.EDITOR, pb: ProjectRole.EDITOR }) };
    const freed = await m.run(["machine", "free", id], two);
    expect(freed.stderr).toBe("");
    expect(freed.code).toBe(0);
    expect(freed.stdout).toContain(id);

    // Not in any of the caller's projects: not found, as for a machine that does not exist.
    const missing = await m.run(["machine", "free", id], one);
    expect(missing).toMatchObject({ code: 3, stderr: `machine "${id}" not found in your project pb\n` });
    // --project still decides when given.
    const other = await m.run(["machine", "update", id, "--project", "pa", "--description", "x"], two);
    expect(other.code).toBe(3);
  });
});

describe("metalctl machine create without --sshpublickey", () => {
  it("puts the user's ~/.ssh/id_ed25519.pub into the allocation, as the original metalctl does", async () => {
    const user = cli();
    mkdirSync(join(user.configHome, ".ssh"), { recursive: true });
    const key = await generateKey(join(user.configHome, ".ssh"), "ed25519");
    const w = await fixture.bootMachine("r2");
    const r = await user.run(["machine", "create", "--project", "pb", "--partition", "p1", "--size", "s1", "--image", "debian-12", "--networks", fixture.primary.pb, "--id", w.id, "-o", "json"], admin());
    expect(r.stderr).toBe("");
    expect((JSON.parse(r.stdout) as { allocation: { sshKeys: string[] } }).allocation.sshKeys).toEqual([key.pub]);
    // Without any key file nothing is added (the allocation above came from this file's own, empty home).
    const bare = await m.run(["machine", "describe", await allocate("pb", "nokey"), "-o", "json"], admin());
    expect((JSON.parse(bare.stdout) as { allocation: { sshKeys?: string[] } }).allocation.sshKeys ?? []).toEqual([]);
  });
});
