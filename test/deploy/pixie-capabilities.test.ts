/**
 * deploy/systemd/pixie.service runs pixie as a user of its own with three
 * capabilities for its child dnsmasq. This runs dnsmasq as pixie writes its
 * configuration (edge/pixie/dnsmasq.ts), as an unprivileged user holding
 * exactly the unit's AmbientCapabilities and no new privileges, on an
 * interface in a network namespace of its own: it binds the proxy DHCP and
 * TFTP ports; without any one of them it refuses to start. As root only
 * (namespaces), with dnsmasq and util-linux's setpriv.
 */
import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareDnsmasq } from "../../edge/pixie/dnsmasq.js";
import { IPXE_BIOS, IPXE_EFI } from "../../edge/pixie/dnsmasq-config.js";
import { has, ip, Processes, runIn } from "../helpers/netns.js";
import { scaled } from "../helpers/timeouts.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const NOBODY = 65534;
const usable = process.getuid?.() === 0 && has("dnsmasq") && has("setpriv") && has("ip");

/** The unit's AmbientCapabilities, as setpriv names them (net_bind_service, ...). */
const unitCaps = () => {
  const line = readFileSync(join(REPO, "deploy/systemd/pixie.service"), "utf8")
    .split("\n")
    .find((l) => l.startsWith("AmbientCapabilities="));
  return (line ?? "")
    .slice("AmbientCapabilities=".length)
    .split(/\s+/)
    .filter(Boolean)
    .map((c) => c.replace(/^CAP_/, "").toLowerCase());
};

/** dnsmasq as pixie runs it, as nobody with `caps` only (inheritable, ambient, bounding) and no new privileges. */
const dnsmasqAs = (caps: string[], config: string) => [
  "setpriv",
  `--reuid=${NOBODY}`,
  `--regid=${NOBODY}`,
  "--clear-groups",
  `--inh-caps=-all${caps.map((c) => `,+${c}`).join("")}`,
  `--ambient-caps=-all${caps.map((c) => `,+${c}`).join("")}`,
  `--bounding-set=-all${caps.map((c) => `,+${c}`).join("")}`,
  "--no-new-privs",
  "dnsmasq",
  "--keep-in-foreground",
  `--conf-file=${config}`,
  "--log-facility=-",
];

describe.skipIf(!usable)("pixie.service's capabilities for dnsmasq", () => {
  const ns = `metal-pixie-caps-${process.pid}`;
  const procs = new Processes();
  let dir: string;
  let config: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "metal-pixie-caps-"));
    // Stand-ins for Debian's iPXE builds: nothing boots here.
    mkdirSync(join(dir, "ipxe"));
    for (const f of [IPXE_BIOS, IPXE_EFI]) writeFileSync(join(dir, "ipxe", f), "ipxe\n");
    const state = join(dir, "state");
    mkdirSync(state);
    config = prepareDnsmasq({ iface: "pxe0", network: "10.255.0.0", ipxeDir: join(dir, "ipxe"), stateDir: state, bootScriptUrl: "http://10.255.0.2:8081/ipxe/boot.ipxe" });
    // The unit's user owns its state directory (StateDirectory=pixie).
    for (const p of [dir, state, join(state, "tftp")]) chownSync(p, NOBODY, NOBODY);
    ip("netns", "add", ns);
    ip("-n", ns, "link", "add", "pxe0", "type", "veth", "peer", "name", "pxe1");
    ip("-n", ns, "addr", "add", "10.255.0.2/24", "dev", "pxe0");
    for (const link of ["pxe0", "pxe1", "lo"]) ip("-n", ns, "link", "set", link, "up");
  });

  afterAll(() => {
    procs.killAll();
    spawnSync("ip", ["netns", "del", ns]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("binds proxy DHCP (67, 4011) and TFTP (69) on the PXE interface with the unit's capabilities", async () => {
    const caps = unitCaps();
    expect(caps.sort()).toEqual(["net_admin", "net_bind_service", "net_raw"]);
    await procs.start(ns, "dnsmasq", dnsmasqAs(caps, config), /TFTP root is/);
    const sockets = runIn(ns, ["ss", "-Hulpn"]);
    for (const port of [67, 69, 4011]) expect(sockets, `port ${port}`).toMatch(new RegExp(`:${port}\\s.*dnsmasq`));
    // Not as root: the process is nobody's.
    const pid = /pid=(\d+)/.exec(sockets)![1]!;
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(new RegExp(`^Uid:\\s+${NOBODY}\\s`, "m"));
    procs.killAll();
  });

  it("does not start without any one of them", () => {
    const caps = unitCaps();
    for (const missing of caps) {
      const out = spawnSync(
        "ip",
        [
          "netns",
          "exec",
          ns,
          ...dnsmasqAs(
            caps.filter((c) => c !== missing),
            config,
          ),
        ],
        { encoding: "utf8", timeout: scaled(10_000) },
      );
      expect(out.status, `without ${missing}: ${out.stderr}`).not.toBe(0);
      // dnsmasq checks NET_ADMIN and NET_RAW itself; without NET_BIND_SERVICE its DHCP port is refused.
      expect(out.stderr, `without ${missing}`).toMatch(/missing required capability|failed to bind .*permission denied/i);
    }
  });
});
