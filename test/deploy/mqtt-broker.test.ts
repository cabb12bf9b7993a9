/**
 * The broker of deploy/kubernetes/base/mqtt.yaml, run for real: Mosquitto
 * with the ConfigMap's mosquitto.conf and acl, its password file made by the
 * init container's own command. Two metal-api buses (two replicas) wake each
 * other through it with the MQTT_URL form the docs give; anonymous clients
 * and wrong passwords are refused, and metal's user reaches no topic outside
 * its prefix.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMqttBus, type MqttBus } from "../../server/bus/mqtt-bus.js";
import { eventually } from "../helpers/eventually.js";
import { freePort } from "../helpers/free-port.js";
import { MOSQUITTO } from "../helpers/mosquitto.js";
import { build, containersOf } from "./kustomize.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd";
const present = existsSync(MOSQUITTO) && existsSync(MOSQUITTO_PASSWD);
/** Characters a URL must escape (a ":" in the password is not read right by the mqtt package: docs/operations.md says so). */
const PASSWORD = "s3cr@t/x?y#z%";

describe.skipIf(!present)("the MQTT broker of deploy/kubernetes (Mosquitto)", () => {
  let dir: string;
  let port: number;
  let broker: ChildProcess | undefined;
  let url: string;
  const clients: { end(): unknown }[] = [];
  const buses: MqttBus[] = [];

  beforeAll(async () => {
    const objects = build(join(REPO, "deploy/kubernetes/base"));
    const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "metal-mqtt")!;
    const data = cm.data as Record<string, string>;
    const deployment = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "metal-mqtt")!;
    const init = containersOf(deployment).find((c) => c.name === "passwd")!;
    dir = mkdtempSync(join(tmpdir(), "metal-deploy-mqtt-"));
    for (const sub of ["config", "auth"]) mkdirSync(join(dir, sub));
    port = await freePort();
    // The pod's paths under /mosquitto/ are the test's directory; the listener is on loopback and a free port.
    const here = (text: string) => text.replaceAll("/mosquitto/", `${dir}/`);
    const conf = here(data["mosquitto.conf"]!).replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`);
    expect(conf).toContain(`listener ${port} 127.0.0.1`);
    writeFileSync(join(dir, "config/mosquitto.conf"), conf);
    writeFileSync(join(dir, "config/acl"), data.acl!);
    const [sh, ...args] = (init.command as string[]).map(here);
    const made = spawnSync(sh!, args, { env: { PATH: dirname(MOSQUITTO_PASSWD), MQTT_PASSWORD: PASSWORD }, encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
    // As root, Mosquitto drops to its own user before it reads the password file; in the pod it is that user already.
    if (process.getuid?.() === 0) {
      const uid = Number(spawnSync("id", ["-u", "mosquitto"], { encoding: "utf8" }).stdout.trim());
      if (Number.isInteger(uid) && uid > 0) for (const f of ["auth", "auth/passwd", "config", "config/acl", "."]) chownSync(join(dir, f), uid, -1);
    }
    let log = "";
    broker = spawn(MOSQUITTO, ["-c", join(dir, "config/mosquitto.conf")], { stdio: ["ignore", "pipe", "pipe"] });
    broker.stdout?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    broker.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    await eventually(`mosquitto on ${port} (${log})`, async () => {
      if (broker?.exitCode !== null) throw new Error(`mosquitto exited: ${log}`);
      const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { username: "metal", password: PASSWORD, reconnectPeriod: 0, connectTimeout: 1000 }).catch(() => undefined);
      await c?.endAsync();
      return c !== undefined;
    });
    // MQTT_URL as docs/operations.md has it: the password percent-encoded.
    url = `mqtt://metal:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}`;
  });

  afterAll(async () => {
    for (const b of buses) await b.close();
    for (const c of clients) c.end();
    broker?.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("carries wake-ups between two metal-api replicas that log in with MQTT_URL", async () => {
    const a = await createMqttBus({ url, prefix: "metal", replicaId: "replica-a", firstConnectMs: 5000 });
    const b = await createMqttBus({ url, prefix: "metal", replicaId: "replica-b", firstConnectMs: 5000 });
    buses.push(a, b);
    await eventually("both connected", () => a.connected && b.connected);
    const got: (string | undefined)[] = [];
    b.subscribe("machine/m1", (payload) => got.push(payload));
    // b's subscription reaches the broker a moment after subscribe(): a publishes until b hears it.
    await eventually("a's wake-up at b", () => {
      a.publish("machine/m1", "hello");
      return got.includes("hello");
    });
  });

  it("refuses anonymous clients and wrong passwords", async () => {
    const opts = { reconnectPeriod: 0, connectTimeout: 5000 };
    await expect(connectAsync(`mqtt://127.0.0.1:${port}`, opts)).rejects.toThrow(/Not authorized|Bad username or password/i);
    await expect(connectAsync(`mqtt://127.0.0.1:${port}`, { ...opts, username: "metal", password: "wrong" })).rejects.toThrow(/Not authorized|Bad username or password/i);
  });

  it("lets metal's user reach no topic outside its prefix", async () => {
    const client: MqttClient = await connectAsync(`mqtt://127.0.0.1:${port}`, { username: "metal", password: PASSWORD, reconnectPeriod: 0 });
    clients.push(client);
    const seen: string[] = [];
    client.on("message", (topic) => seen.push(topic));
    await client.subscribeAsync(["other/#", "metal/#"], { qos: 1 });
    // Published in order on one connection: once the marker arrives, a message on other/ would have arrived before it.
    await client.publishAsync("other/x", "no", { qos: 1 });
    await client.publishAsync("metal/marker", "yes", { qos: 1 });
    await eventually("the marker", () => seen.includes("metal/marker"));
    expect(seen).toEqual(["metal/marker"]);
  });
});

// Read to fail loudly if the manifest's broker user ever differs from the URL's.
it("uses one broker user in the ConfigMap's acl and the init container", () => {
  const text = readFileSync(join(REPO, "deploy/kubernetes/base/mqtt.yaml"), "utf8");
  expect(text).toMatch(/^\s+user metal$/m);
  expect(text).toContain("mosquitto_passwd -c -b /mosquitto/auth/passwd metal ");
});
