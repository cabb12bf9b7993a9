import { generateKeyPairSync, randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { TokenService } from "../../gen/metal/api/v1/token_pb.js";
import { BMCService } from "../../gen/metal/infra/v1/bmc_pb.js";
import { BootService } from "../../gen/metal/infra/v1/boot_pb.js";
import { EventService } from "../../gen/metal/infra/v1/event_pb.js";
import { createLogger } from "../../server/logger.js";
import { expectCode } from "../helpers/expect.js";
import { type PartitionFixture, setUpPartition } from "../helpers/partition-fixture.js";
import { launchServer, type TestServer } from "../helpers/server-launch.js";

/**
 * Issue 12 item 3: no secret reaches the server log, whatever fails. The
 * server logs at trace level into memory; requests carry recognisable secrets
 * in every secret field a caller can reach (user data, SSH keys, console and
 * BMC passwords, bearer tokens, a query string), and the database is made to
 * fail under them: check constraints that refuse the write (PostgreSQL then
 * reports the failing row in `detail`, drizzle the parameters in its message)
 * and a unique index that echoes the key value.
 */
const tag = randomBytes(6).toString("hex");
const secret = (what: string) => `S3CRET${what}${tag}`;

/** An OpenSSH ed25519 public key line: its key material and its comment are secrets here. */
function sshKey(comment: string): { line: string; body: string } {
  const raw = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const body = Buffer.concat([field(Buffer.from("ssh-ed25519")), field(raw)]).toString("base64");
  return { line: `ssh-ed25519 ${body} ${comment}`, body };
}

const USER_DATA = `#cloud-config\n# ${secret("userdata")}\n`;
const SSH = sshKey(secret("sshcomment"));
const CONSOLE_PASSWORD = secret("consolepw");
const BMC_PASSWORD = secret("bmcpw");
const QUERY_TOKEN = secret("querytoken");
const GARBAGE_BEARER = secret("garbagebearer");

const lines: string[] = [];
let server: TestServer;
let fixture: PartitionFixture;
let stop: () => Promise<void>;
/** Bearer secrets issued during the test: they count as secrets too. */
const bearers: string[] = [];

beforeAll(async () => {
  const log = createLogger("trace", { destination: { write: (s: string) => void lines.push(s) } });
  ({ server, stop } = await launchServer({ env: { LOG_LEVEL: "trace" }, log, waitTiming: { keepaliveMs: 100, leaseMs: 60_000, recheckMs: 1_000 } }));
  const { app, adminToken } = server;
  bearers.push(adminToken);
  for (const statement of PROBE_SQL) await app.db.execute(sql.raw(statement));
  fixture = await setUpPartition(server);
  bearers.push(fixture.infraToken);
});

afterAll(async () => {
  fixture?.stopAll();
  await stop?.();
});

/**
 * Database failures on demand, without DDL while the server works (DDL waits
 * for every open transaction and everything waits for it): a trigger on
 * machines and tokens, installed before the first request, refuses the write
 * the `mode` row names, exactly as a failed check constraint does, with the
 * whole new row in `detail`. A unique index on the user data makes PostgreSQL
 * echo the key of a duplicate in its own words.
 */
const PROBE_SQL = [
  `create table log_secrets_probe (mode text not null)`,
  `insert into log_secrets_probe values ('')`,
  `create function log_secrets_probe() returns trigger language plpgsql as $$
   declare
     m text := (select mode from log_secrets_probe);
     n jsonb := to_jsonb(new);
     o jsonb := case when TG_OP = 'UPDATE' then to_jsonb(old) else '{}'::jsonb end;
     refuse boolean := case m
       when 'allocation' then TG_TABLE_NAME = 'machines' and jsonb_typeof(n -> 'allocation') = 'object' and coalesce(jsonb_typeof(o -> 'allocation'), 'null') = 'null'
       when 'console password' then TG_TABLE_NAME = 'machines' and coalesce((n -> 'allocation') ? 'consolePassword', false)
       when 'bmc' then TG_TABLE_NAME = 'machines' and jsonb_typeof(n -> 'bmc') = 'object'
       when 'tokens' then TG_TABLE_NAME = 'tokens'
       else false end;
   begin
     if refuse then
       raise exception 'new row for relation "%" violates check constraint "log_secrets_probe"', TG_TABLE_NAME
         using errcode = 'check_violation', detail = 'Failing row contains ' || n::text, constraint = 'log_secrets_probe', table = TG_TABLE_NAME;
     end if;
     return new;
   end $$`,
  `create trigger log_secrets_probe before insert or update on machines for each row execute function log_secrets_probe()`,
  `create trigger log_secrets_probe before insert or update on tokens for each row execute function log_secrets_probe()`,
  `create unique index log_secrets_probe_user_data on machines ((allocation ->> 'userData'))`,
];

/** Runs `fn` while the metal database refuses the writes of `mode`. */
async function whileRefused(mode: "allocation" | "console password" | "bmc" | "tokens", fn: () => Promise<void>): Promise<void> {
  await server.app.db.execute(sql`update log_secrets_probe set mode = ${mode}`);
  try {
    await fn();
  } finally {
    await server.app.db.execute(sql`update log_secrets_probe set mode = ''`);
  }
}

const logged = () => lines.join("");
const internalFailures = () => lines.filter((l) => l.includes('"rpc failed unexpectedly"')).length;

describe("the server log", () => {
  it("holds no secret of a request, whatever failed", async () => {
    const editor = (await server.client(AdminTokens, server.adminToken).create({ subject: "ed", roles: { projectRoles: { pb: ProjectRole.EDITOR } } })).secret;
    bearers.push(editor);
    const machines = server.client(MachineService, editor);
    const allocation = { project: "pb", partition: "p1", size: "s1", image: "debian-12", networks: [fixture.primary.pb], userData: USER_DATA, sshKeys: [SSH.line] };
    const first = await fixture.bootMachine("r1");
    const second = await fixture.bootMachine("r2");
    const failuresBefore = internalFailures();

    // Bad input carrying secrets: refused, nothing of it logged.
    await expectCode(machines.create({ ...allocation, sshKeys: [`not-a-key ${SSH.body}`] }), Code.InvalidArgument);
    await expectCode(server.client(MachineService, GARBAGE_BEARER).list({ project: "pb" }), Code.Unauthenticated);

    // Allocation with user data and SSH keys, while the database refuses to store an allocation.
    await whileRefused("allocation", async () => {
      await expectCode(machines.create({ ...allocation, name: "refused" }), Code.Internal, "request id");
    });
    await machines.create({ ...allocation, name: "web-1" });
    // Only the allocated machine's Wait ends.
    expect((await Promise.race([first.allocation, second.allocation]))?.userData).toBe(USER_DATA);

    // The unique index on the user data: PostgreSQL's detail of the violation echoes the key.
    const duplicate = await expectCode(machines.create({ ...allocation, name: "web-2" }), Code.Internal);
    expect(duplicate.rawMessage).not.toContain(tag);
    const installed = (await machines.list({ project: "pb" })).machines[0]!.id;

    // InstallationSucceeded with the console password, while the database refuses to store it.
    const infra = fixture.infraToken;
    await server.client(EventService, infra).send({ partition: "p1", events: [T.INSTALLING, T.BOOTING_NEW_KERNEL].map((type) => ({ machineId: installed, type })) });
    const succeeded = {
      partition: "p1",
      machineId: installed,
      consolePassword: CONSOLE_PASSWORD,
      bootInfo: { imageId: "debian-12.0.20250101", primaryDisk: "/dev/sda", osPartition: "/dev/sda2", kernel: "/boot/vmlinuz", initrd: "/boot/initrd", cmdline: "root=/dev/sda2", bootloaderId: "debian" },
    };
    await whileRefused("console password", async () => {
      await expectCode(server.client(BootService, infra).installationSucceeded(succeeded), Code.Internal);
    });
    await server.client(BootService, infra).installationSucceeded(succeeded);
    const read = await machines.consolePassword({ id: installed, project: "pb", reason: "checking the log-secrets test" });
    expect(read.consolePassword).toBe(CONSOLE_PASSWORD);

    // A BMC report with its password, while the database refuses to store BMC data.
    const report = { machineId: installed, address: "10.1.0.7:623", mac: "AA:BB:CC:00:00:07", user: "ADMIN", password: BMC_PASSWORD, interface: "lanplus", version: "3.45", powerState: "on", fru: {} };
    await whileRefused("bmc", async () => {
      await expectCode(server.client(BMCService, infra).report({ partition: "p1", reports: [report] }), Code.Internal);
    });
    await server.client(BMCService, infra).report({ partition: "p1", reports: [report] });

    // Token create while tokens cannot be stored; the caller's bearer is a secret of the request.
    await whileRefused("tokens", async () => {
      await expectCode(server.client(TokenService, editor).create({ description: "refused", roles: {} }), Code.Internal);
    });
    bearers.push((await server.client(TokenService, editor).create({ description: "kept", roles: {} })).secret);

    // A token in a query string.
    const res = await fetch(`${server.url}/metal.api.v1.VersionService/Get?token=${QUERY_TOKEN}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    await res.arrayBuffer();

    // A client that goes away in the middle of a stream (the Wait of the machine still waiting: it gets keepalives).
    const idle = [first, second].find((m) => m.id !== installed)!;
    const aborted = new AbortController();
    const stream = server.grpcClient(BootService, infra).wait({ partition: "p1", machineId: idle.id }, { signal: aborted.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next().catch(() => undefined);
    aborted.abort();
    await it.next().catch(() => undefined);

    const log = logged();

    const secrets = [USER_DATA.trim(), secret("userdata"), SSH.body, secret("sshcomment"), CONSOLE_PASSWORD, BMC_PASSWORD, QUERY_TOKEN, GARBAGE_BEARER, ...bearers];
    const leaks = secrets.filter((s) => log.includes(s) || log.includes(JSON.stringify(s).slice(1, -1)));
    expect(leaks, `secrets found in the log:\n${lines.filter((l) => leaks.some((s) => l.includes(s))).join("")}`).toEqual([]);
    expect(log).not.toContain(tag);

    // Anchors: every provoked database failure was logged, and stays useful (the constraint is named).
    expect(internalFailures() - failuresBefore).toBeGreaterThanOrEqual(5);
    expect(log).toContain('"constraint":"log_secrets_probe"');
    expect(log).toContain('"constraint":"log_secrets_probe_user_data"');
    expect(log).toContain('"console password read"');
  });
});

describe("the logger's redaction", () => {
  const capture = () => {
    const out: string[] = [];
    return { log: createLogger("trace", { destination: { write: (s: string) => void out.push(s) } }), text: () => out.join("") };
  };

  it("keeps what explains an error and drops what can echo data, however the error is handed over", () => {
    const { log, text } = capture();
    const pgError = Object.assign(new Error(`invalid input syntax for type inet: "${secret("inet")}"`), {
      code: "22P02",
      severity: "ERROR",
      detail: `Key (ip)=(${secret("detail")}) already exists.`,
      where: secret("where"),
      hint: secret("hint"),
      table: "ips",
      column: "ip",
    });
    const wrapped = Object.assign(new Error(`Failed query: insert into "ips" values ($1)\nparams: ${secret("param")}`), {
      query: 'insert into "ips" values ($1)',
      params: [secret("param")],
      cause: pgError,
    });
    log.error({ err: wrapped }, "as a field");
    log.error(wrapped);
    log.child({ err: wrapped }).warn("as a binding");
    log.error({ nested: { deeper: [{ error: wrapped }] } }, "nested");
    let parseError: unknown;
    try {
      JSON.parse(`{"password": "${secret("json")}`);
    } catch (err) {
      parseError = err;
    }
    log.warn({ err: parseError }, "bad JSON");
    const t = text();
    expect(t).not.toContain(tag);
    expect(t).toContain('"code":"22P02"');
    expect(t).toContain('"table":"ips"');
    expect(t).toContain('"query":"insert into \\"ips\\" values ($1)"');
  });

  it("replaces secret fields at any depth and cuts query strings off URLs", () => {
    const { log, text } = capture();
    log.info(
      {
        authorization: `Bearer ${secret("bearer")}`,
        request: { consolePassword: secret("cp"), bmc: { password: secret("bmc") }, ssh_public_keys: [secret("ssh")], user_data: secret("ud") },
        adminToken: secret("admintoken"),
        url: `/metal.api.v1.MachineService/List?token=${secret("query")}`,
        machine: "kept-value",
      },
      "fields",
    );
    const t = text();
    expect(t).not.toContain(tag);
    expect(t).toContain("kept-value");
    expect(t).toContain("/metal.api.v1.MachineService/List?");
  });
});
