import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MetalCore } from "../../edge/core/metal-core.js";
import { CONFIG_PATHS } from "../../edge/core/switch-os.js";
import { SimSwitch } from "../../edge/sim/switch.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { TokenService as AdminTokens } from "../../gen/metal/admin/v1/token_pb.js";
import { SwitchService } from "../../gen/metal/infra/v1/switch_pb.js";
import { createInProcessBus, switchTopic } from "../../server/bus/fanout.js";
import { eventually } from "../helpers/eventually.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { scaled } from "../helpers/timeouts.js";

const SWITCHES = 100;
/** Two leaves per rack, as in a real partition. */
const rackOf = (id: string) => `r${Math.floor(Number(id.slice(4)) / 2)}`;

let server: TestServer;
let root: string;
let token: string;
const cores: { id: string; core: MetalCore }[] = [];
const published = new Map<string, number>();

beforeAll(async () => {
  // The bus tells when each change committed: the switch topic is published right after.
  const inner = createInProcessBus();
  server = await startTestServer({
    bus: {
      ...inner,
      publish(topic) {
        published.set(topic, performance.now());
        inner.publish(topic);
      },
    },
  });
  await server.client(AdminPartitions, server.adminToken).create({ id: "p1" });
  token = (await server.client(AdminTokens, server.adminToken).create({ subject: "p1", roles: { infraPartition: "p1" } })).secret;
  root = await mkdtemp(join(tmpdir(), "fanout-"));
  for (let i = 0; i < SWITCHES; i++) {
    const id = `leaf${String(i).padStart(3, "0")}`;
    // FRR's parser is a process per check; 100 of them at once would measure the machine, not the fan-out.
    const sim = new SimSwitch({ id, root: join(root, id), frontPorts: 4, frrCheck: false });
    // Heartbeats (on which the server also re-reads the config) are out of reach: only the bus can bring a change in time.
    const core = new MetalCore({ url: server.url, token, partition: "p1", rack: rackOf(id), os: sim, timing: { heartbeatMs: 600_000, backoff: { initialMs: 100 } } });
    core.start();
    cores.push({ id, core });
  }
});

afterAll(async () => {
  await Promise.all(cores.map((c) => c.core.stop()));
  await rm(root, { recursive: true, force: true });
});

it(
  `brings a config change to all ${SWITCHES} switches' metal-core through the bus, not the periodic re-read`,
  async () => {
    await eventually("every switch to sync once", () => cores.every((c) => c.core.lastSync?.error === ""), scaled(60_000));
    // Every switch's desired config changes at once: a new port each.
    await Promise.all(
      cores.map(async ({ id, core }) => {
        const synced = new Promise<void>((resolve) => {
          const off = core.onSync((s) => {
            if (s.changed && s.error === "") {
              off();
              resolve();
            }
          });
        });
        await server.client(SwitchService, token).register({ partition: "p1", id, rack: rackOf(id), nics: ["swp1", "swp2", "swp3", "swp4", "swp9"].map((name) => ({ name })) });
        await synced;
      }),
    );
    // Each switch was woken by its own topic, and its files now hold the new port (how fast: npm run bench).
    for (const { id } of cores) {
      expect(published.has(switchTopic(id))).toBe(true);
      expect(await readFile(join(root, id, CONFIG_PATHS.interfaces), "utf8")).toContain("swp9");
    }
  },
  scaled(120_000),
);
