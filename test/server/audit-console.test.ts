import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService as AdminAuditService } from "../../gen/metal/admin/v1/audit_pb.js";
import { launchServer } from "../helpers/server-launch.js";
import { type ConsoleTarget, generateKey, refusedConsole, writeKnownHosts } from "../helpers/ssh-client.js";
import type { TestServer } from "../helpers/test-server.js";

let server: TestServer;
let stop: () => Promise<void>;
let target: ConsoleTarget;
let key: string;

beforeAll(async () => {
  ({ server, stop } = await launchServer({ console: true, dropInBackground: true }));
  const dir = await mkdtemp(join(tmpdir(), "audit-console-test-"));
  key = (await generateKey(dir, "someone")).file;
  const knownHosts = await writeKnownHosts(join(dir, "known_hosts"), "127.0.0.1", server.console!.port, server.console!.hostKey);
  target = { host: "127.0.0.1", port: server.console!.port, knownHosts, home: dir };
});
afterAll(() => stop());

describe("SSH console sessions in the audit trail", () => {
  it("records a refusal to a valid token, with the machine, and none to a caller without one", async () => {
    const machineId = "00000000-0000-4000-8000-0000000055aa";
    await refusedConsole(target, machineId, { key, token: server.adminToken });
    await refusedConsole(target, "00000000-0000-4000-8000-0000000055bb", { key });
    const entries = (await server.client(AdminAuditService, server.adminToken).list({ filter: { method: "ssh-console/Open" } })).entries;
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ method: "ssh-console/Open", outcome: "permission_denied", targetIds: [machineId] });
    expect(entries[0]!.subject).not.toBe("");
    expect(entries[0]!.request).toMatchObject({ machineId });
  });
});
