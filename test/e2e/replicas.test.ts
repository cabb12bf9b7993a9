import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { replicaEnvironment } from "../../edge/lab/replicas.js";
import { LAB } from "../../edge/lab/seed.js";
import { ConnectionService, DaemonKind } from "../../gen/metal/admin/v1/connection_pb.js";
import { MachineService as AdminMachineService, BmcCommand, BmcCommandStatus } from "../../gen/metal/admin/v1/machine_pb.js";
import { SwitchPortState, SwitchService } from "../../gen/metal/admin/v1/switch_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { ProjectRole } from "../../gen/metal/api/v1/common_pb.js";
import { MachineService, ProvisioningEventType as T } from "../../gen/metal/api/v1/machine_pb.js";
import { UserService } from "../../gen/metal/api/v1/user_pb.js";
import { describeSettings, loadConfig } from "../../server/config.js";
import { eventually } from "../helpers/eventually.js";
import { type ReplicaCluster, startReplicaCluster } from "../helpers/replica-cluster.js";
import { generateKey, splitAddress, sshConsole, writeKnownHosts } from "../helpers/ssh-client.js";
import { scaled } from "../helpers/timeouts.js";
import { spawnLab } from "./lab-process.js";

/**
 * Issue 15's done-when with two metal-api processes (replicas 0 and 1) on one
 * PostgreSQL, a private Mosquitto, and the lab's partition behind the
 * round-robin proxy. Every machine's metal-hammer is pinned to replica 1 (its
 * calls go through its leaves' metal-cores, which dial replica 1), so an
 * allocation made on replica 0 can reach it only across replicas; metal-bmc's
 * session lands where the proxy puts it, and
 * each test reads ConnectionService.List to act on the replica that does
 * NOT hold the daemon it needs. Heavy: two bundled metal-api processes and
 * a broker; one cluster for the file.
 */
let t: ReplicaCluster;
const HAMMER_REPLICA = 1;

/**
 * The replicas run metal-api's default Wait timing: a waiting machine's
 * stream re-reads the database every 60 s as the safety net. Reaching the
 * hammer well within that (scaled, also on a slow machine) is the bus's work.
 */
const WAKE_UP_MS = scaled(12_000);

const waitingNow = async (id: string) => {
  const m = await t.machine(id);
  return m.waiting && m.events?.log[0]?.type === T.WAITING;
};

/** The replica that does not hold daemon `id` (the one a change is made on). */
async function otherThanHolder(kind: DaemonKind, id: string): Promise<{ holder: number; other: number }> {
  const holder = await eventually(`a replica to hold ${id}`, () => t.holderOf(kind, id));
  expect(holder).toBeGreaterThanOrEqual(0);
  return { holder, other: 1 - holder };
}

beforeAll(async () => {
  t = await startReplicaCluster({
    machines: 4,
    // metal-hammer's calls go through its leaves' metal-cores: pinning both leaves pins every hammer.
    dial: (daemon, replicas) => (daemon === "leaf01" || daemon === "leaf02" ? replicas[HAMMER_REPLICA] : undefined),
  });
  await eventually("4 waiting machines", async () => (await Promise.all(t.lab.machines.map((m) => waitingNow(m.uuid)))).every(Boolean), scaled(60_000));
}, scaled(180_000));

afterAll(async () => {
  await t?.dispose();
});

describe("two replicas behind a round-robin proxy, woken through Mosquitto [heavy]", () => {
  it("ConnectionService.List on either replica shows every session, each with the replica that holds it", async () => {
    const ids = new Set(t.replicas.map((r) => r.id));
    const listed = async (replica: number) => (await t.admin(ConnectionService, replica).list({})).connections.map((c) => `${DaemonKind[c.kind]}/${c.id}@${c.replica}`).sort();
    const expected = await eventually("both leaves and metal-bmc listed", async () => {
      const l = await listed(0);
      return l.length === 3 && l.some((x) => x.startsWith("SWITCH/leaf01@")) && l.some((x) => x.startsWith("SWITCH/leaf02@")) && l.some((x) => x.startsWith("BMC/lab-bmc@")) ? l : undefined;
    });
    for (const entry of expected) expect(ids.has(entry.slice(entry.indexOf("@") + 1)), entry).toBe(true);
    expect(await listed(1)).toEqual(expected);
    // Asked through the proxy, whichever replica answers says the same.
    expect((await t.admin(ConnectionService).list({})).connections.length).toBe(3);
  });

  it("an allocation made on replica 0 reaches the Wait stream on replica 1: the machine leaves Waiting and installs", async () => {
    const { machine } = await t.admin(MachineService, 1 - HAMMER_REPLICA).create({
      project: LAB.project,
      partition: LAB.partition,
      size: LAB.size,
      image: "debian-12",
      hostname: "across",
      networks: [t.lab.projectNetwork],
    });
    const id = machine!.id;
    await eventually("the hammer on replica 1 to start installing", async () => (await t.events(id)).includes(T.INSTALLING), WAKE_UP_MS);
    await eventually("the machine to phone home", async () => (await t.events(id)).includes(T.PHONED_HOME), scaled(30_000));
    expect((await t.machine(id)).allocation?.hostname).toBe("across");
  });

  it("a switch change made on one replica is applied by the metal-core the other replica holds", async () => {
    const { other } = await otherThanHolder(DaemonKind.SWITCH, "leaf01");
    // A port's link state is the switch's alone: toggling it changes nothing else under test.
    const port = t.lab.machines.at(-1)!.port;
    const iface = async () => {
      const text = await readFile(join(t.lab.dir, "switches", "leaf01", "etc/network/interfaces"), "utf8");
      const lines = text.split("\n");
      const at = lines.indexOf(`iface ${port}`);
      const block: string[] = [];
      for (const l of at === -1 ? [] : lines.slice(at + 1)) {
        if (!l.startsWith("    ")) break;
        block.push(l.trim());
      }
      return block;
    };
    expect(await iface()).not.toContain("link-down yes");
    await t.admin(SwitchService, other).port({ id: "leaf01", nic: port, state: SwitchPortState.DOWN });
    await eventually(`leaf01 to take ${port} down`, async () => (await iface()).includes("link-down yes"));
    await t.admin(SwitchService, other).port({ id: "leaf01", nic: port, state: SwitchPortState.UP });
    await eventually(`leaf01 to bring ${port} up again`, async () => !(await iface()).includes("link-down yes"));
  });

  it("a BMC command queued on one replica runs once on the metal-bmc the other replica holds", async () => {
    const { other } = await otherThanHolder(DaemonKind.BMC, "lab-bmc");
    const m = t.lab.machines.find((x) => x.bmc.led === "off")!;
    const before = m.bmc.executed.length;
    const cmd = (await t.admin(AdminMachineService, other).bMCCommand({ id: m.uuid, command: BmcCommand.LED_ON, description: "across replicas" })).command!;
    await eventually("the LED to be on", () => m.bmc.led === "on");
    await eventually("the command to be done", async () => (await t.admin(AdminMachineService, other).commands({ id: m.uuid })).commands.find((c) => c.id === cmd.id)?.status === BmcCommandStatus.DONE);
    expect(m.bmc.executed.slice(before)).toEqual(["LED_ON"]);
  });

  it("an SSH console opened on one replica shows the serial console of a machine whose metal-bmc the other holds (OpenSSH)", async () => {
    const { other } = await otherThanHolder(DaemonKind.BMC, "lab-bmc");
    const free = await eventually("a waiting machine", async () => {
      for (const m of t.lab.machines) if (await waitingNow(m.uuid)) return m;
      return undefined;
    });
    const key = await generateKey(t.dir, "operator");
    const { host, port } = splitAddress(t.replicas[other]!.consoleAddress);
    const target = { host, port, knownHosts: await writeKnownHosts(join(t.dir, "known_hosts"), host, port, t.lab.consoleHostKey), home: t.dir };
    const s = sshConsole(target, free.uuid, { key: key.file, token: t.lab.adminToken });
    await s.see(`connected to ${free.uuid}`);
    await s.see("Loading metal-hammer...");
    s.type("hostname\r");
    await s.see("there is no login in the discovery image");
    expect(free.bmc.serial.typed).toContain("hostname\r");
    s.kill();
    await s.ends();
    await eventually(`the relay of ${free.uuid} to close`, () => free.bmc.serial.attachments === 0);
  });

  it("a token revoked on one replica is refused on the other at once", async () => {
    const created = await t.admin(AdminTokens, 0).create({ subject: "rita", description: "revoked across replicas", roles: { projectRoles: { [LAB.project]: ProjectRole.EDITOR } } });
    const whoami = (replica: number) => t.client(UserService, created.secret, replica).get({});
    // Replica 1 has verified it (and may cache that) before the revocation.
    await whoami(1);
    await t.admin(AdminTokens, 0).revoke({ id: created.token!.id });
    // No waiting: Revoke answers once the live replicas acknowledged.
    const refused = await whoami(1).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(refused?.code).toBe(Code.Unauthenticated);
    const refusedHere = await whoami(0).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(refusedHere?.code).toBe(Code.Unauthenticated);
  });
});

describe("npm start -- --replicas N", () => {
  it("refuses several replicas on the embedded database with one line saying what to set, before starting anything", async () => {
    const lab = spawnLab(["--replicas", "2"], { PATH: process.env.PATH, HOME: t.dir, METAL_DATA_DIR: join(t.dir, "embedded") }, t.dir);
    expect(await lab.exited).toBe(2);
    expect(lab.stderr()).toContain("--replicas 2 needs PostgreSQL: set DATABASE_URL and MASTERDATA_DATABASE_URL");
    expect(lab.stderr()).not.toContain("opening the control plane");
  });

  it("hands every control-plane setting to its replicas, apart from the ones it chooses per replica", () => {
    const settings = [...describeSettings().matchAll(/\$([A-Z0-9_]+)/g)].map((m) => m[1]!);
    expect(settings.length).toBeGreaterThan(20);
    const perReplica = ["METAL_LISTEN", "METAL_CONSOLE_LISTEN", "METAL_REPLICA_ID", "METAL_INTERNAL_ADDRESS", "MQTT_URL"];
    const config = loadConfig(
      {
        DATABASE_URL: "postgres://db/metal",
        MASTERDATA_DATABASE_URL: "postgres://db/md",
        METAL_REPLICA_HEARTBEAT: "700ms",
        METAL_CONSOLE_IDLE_TIMEOUT: "0",
        METAL_CORS_ORIGINS: "https://a.example,https://b.example",
        METAL_WAIT_STREAM_LIMITS: "3/4/5",
        METAL_WEB_DIR: "/srv/metal-web",
        METAL_OIDC_ISSUER: "https://idp.example",
        METAL_OIDC_CLIENT_ID: "metal",
        METAL_OIDC_CLIENT_SECRET: "s3cret",
        METAL_SIGNIN_TOKEN_TTL: "2h",
        METAL_SIGNIN_USER_QUOTAS: "project=5,machine=1",
      },
      [],
    );
    const env = replicaEnvironment(config);
    expect(settings.filter((name) => !(name in env) && !perReplica.includes(name))).toEqual([]);
    // What it passes reads back as the same configuration, but for what each replica gets of its own.
    const back = loadConfig(env, []);
    expect({ ...back, listen: config.listen, consoleListen: config.consoleListen, internalAddress: config.internalAddress }).toEqual(config);
    // Without sign-in, replicas get none, whatever the lab's own environment holds.
    const plain = loadConfig({ DATABASE_URL: "postgres://db/metal", MASTERDATA_DATABASE_URL: "postgres://db/md" }, []);
    expect(loadConfig(replicaEnvironment(plain), []).oidc).toBeUndefined();
  });
});
