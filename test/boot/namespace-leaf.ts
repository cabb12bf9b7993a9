import { execFile } from "node:child_process";
import { parseLldpctl } from "../../edge/core/linux-switch.js";
import type { LldpSighting } from "../../edge/core/switch-os.js";
import { SimSwitch, type SimSwitchOptions } from "../../edge/sim/switch.js";

/**
 * A leaf for metal-core whose configuration side is the simulated switch
 * (files in a scratch directory, checked by FRR's parser) and whose LLDP
 * side is real: the lldpd that plays the leaf's swp1 on the machine's tap
 * in the test's network namespace. What that lldpd hears from the machine
 * (metal-hammer's lldpd, later the installed OS's) is what metal-core
 * turns into Phoned Home events.
 */
export class NamespaceLeaf extends SimSwitch {
  constructor(
    opts: SimSwitchOptions,
    private readonly lldp: { namespace: string; socket: string; tap: string; port: string },
  ) {
    super(opts);
  }

  override async lldpSightings(): Promise<LldpSighting[]> {
    const { namespace, socket, tap, port } = this.lldp;
    const json = await new Promise<string>((resolve) =>
      execFile("ip", ["netns", "exec", namespace, "lldpcli", "-u", socket, "-f", "json", "show", "neighbors"], { timeout: 10_000 }, (err, stdout) => resolve(err ? "" : stdout)),
    );
    return parseLldpctl(json)
      .filter((s) => s.port === tap)
      .map((s) => ({ ...s, port }));
  }
}
