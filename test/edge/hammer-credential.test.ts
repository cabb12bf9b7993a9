import { randomUUID } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { createFailoverTransport } from "../../client/failover-transport.js";
import { MachineCredential } from "../../edge/hammer/credential.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { eventually } from "../helpers/eventually.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

let server: TestServer;
let fixture: PartitionFixture;

beforeAll(async () => {
  server = await startTestServer();
  fixture = await setUpPartition(server);
});

let mac = 0x10;
/** What pixie gets for a booting machine the control plane does not know yet: a first-boot credential for its UUID and MAC. */
async function bootCredential() {
  const uuid = randomUUID();
  const answer = await server.client(BootService, fixture.infraToken).boot({ partition: "p1", mac: `0c:c4:7a:dd:00:${(mac++).toString(16)}`, uuid });
  expect(answer.machineId).toBe(uuid);
  return { uuid, secret: answer.machineCredential };
}

interface Logged {
  msg: string;
  fields?: Record<string, unknown>;
}

/** The hammer's BootService client: through the failover transport, the server as its one core, the credential's current secret as token. */
function bootClient(token: () => string) {
  return createClient(BootService, createFailoverTransport({ endpoints: [server.url], token }));
}

describe("MachineCredential.keepFresh", () => {
  it("renews through RenewCredential once two thirds of its life have passed, and the renewed credential works", async () => {
    const { uuid, secret } = await bootCredential();
    // Expiring now: its whole life has passed, the renewal is due at once.
    const due = new Date();
    const cred = new MachineCredential({ machineId: uuid, partition: "p1", secret, expiresAt: due });
    const logs: Logged[] = [];
    const stop = new AbortController();
    const boot = bootClient(() => cred.secret);
    const running = cred.keepFresh(boot, stop.signal, (msg, fields) => logs.push({ msg, fields }));
    // The server's credentials live an hour (its default).
    await eventually("the renewal", () => cred.expiresAt.getTime() > due.getTime() + 30 * 60_000);
    expect(logs.map((l) => l.msg)).toEqual(["machine credential renewed"]);
    expect(cred.machineId).toBe(uuid);
    // The renewed secret is a credential of the same machine: it renews again.
    const again = await bootClient(() => cred.secret).renewCredential({ partition: "p1", machineId: uuid });
    expect(again.machineCredential).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    stop.abort();
    await running;
    expect(JSON.stringify(logs)).not.toContain(cred.secret);
  });

  it("retries a failed renewal with backoff, logging it, and never throws", async () => {
    const { uuid, secret } = await bootCredential();
    const cred = new MachineCredential({ machineId: uuid, partition: "p1", secret, expiresAt: new Date() });
    // The first renewal goes out with a credential the server does not accept.
    let first = true;
    const boot = bootClient(() => {
      if (!first) return cred.secret;
      first = false;
      return `${secret.slice(0, -4)}AAAA`;
    });
    const logs: Logged[] = [];
    const stop = new AbortController();
    const running = cred.keepFresh(boot, stop.signal, (msg, fields) => logs.push({ msg, fields }));
    await eventually("the renewal after a failure", () => logs.some((l) => l.msg === "machine credential renewed"));
    expect(logs.map((l) => [l.msg, l.fields?.code])).toEqual([
      ["renewing the machine credential failed, retrying", Code[Code.Unauthenticated]],
      ["machine credential renewed", undefined],
    ]);
    stop.abort();
    await running;
  });

  it("stops at once when its signal aborts, with the next renewal far ahead", async () => {
    const { uuid, secret } = await bootCredential();
    const expiresAt = new Date(Date.now() + 3_600_000);
    const cred = new MachineCredential({ machineId: uuid, partition: "p1", secret, expiresAt });
    const stop = new AbortController();
    let calls = 0;
    const boot = bootClient(() => (calls++, cred.secret));
    const running = cred.keepFresh(boot, stop.signal);
    stop.abort();
    await running;
    expect(calls).toBe(0);
    expect(cred.secret).toBe(secret);
    expect(cred.expiresAt).toBe(expiresAt);
  });
});
