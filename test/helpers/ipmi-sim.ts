import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Whether every program is on PATH (the ipmi_sim tests skip otherwise). */
export const installed = (...programs: string[]): boolean => programs.every((p) => spawnSync("sh", ["-c", `command -v ${p}`]).status === 0);

export async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** ipmitool prints the GUID's bytes in reverse order of how ipmi_sim is configured with them. */
export const guidFor = (uuid: string): string => uuid.replaceAll("-", "").match(/../g)!.reverse().join("");

export const IPMI_SIM_USER = "ADMIN";
export const IPMI_SIM_PASSWORD = "bmc-Secret1";

/**
 * Starts OpenIPMI's ipmi_sim as one BMC on 127.0.0.1:`port` (lanplus, user
 * ADMIN), reporting `uuid` as its system GUID. `extra` are further lan.conf
 * lines of the BMC (a chassis_control script, a SOL serial port). The
 * simulator is killed when the test process exits, even without afterAll.
 */
export async function startIpmiSim(opts: { dir: string; port: number; uuid: string; name: string; extra: string[] }): Promise<ChildProcess> {
  const { dir, port, uuid, name, extra } = opts;
  const auths = "none md2 md5 straight";
  await writeFile(
    join(dir, "lan.conf"),
    [
      `name "${name}"`,
      "set_working_mc 0x20",
      "  startlan 1",
      `    addr 127.0.0.1 ${port}`,
      "    priv_limit admin",
      ...["callback", "user", "operator", "admin"].map((level) => `    allowed_auths_${level} ${auths}`),
      `    guid ${guidFor(uuid)}`,
      "  endlan",
      ...extra.map((l) => `  ${l}`),
      `  user 2 true "${IPMI_SIM_USER}" "${IPMI_SIM_PASSWORD}" admin 10 ${auths}`,
      "",
    ].join("\n"),
  );
  await writeFile(join(dir, "cmds"), "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n");
  const sim = spawn("ipmi_sim", ["-c", join(dir, "lan.conf"), "-f", join(dir, "cmds"), "-s", join(dir, "state"), "-n"], { stdio: "ignore" });
  // A worker killed on a timeout runs no afterAll; the simulator must not outlive it.
  process.once("exit", () => sim.kill());
  return sim;
}
