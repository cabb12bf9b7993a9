import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DISCOVERY_IMAGE_DIR, ensureDiscoveryImage } from "../boot/discovery-image.js";
import type { Comparison, Measurement } from "./harness.js";

/**
 * Issue 17: a real (virtual) machine under TCG, wall times reported without
 * a target. The subject is test/boot/vm-boot.test.ts run once (QEMU
 * PXE-boots the discovery image, registers, waits; metalctl allocates; the
 * hammer installs the test OS and kexecs; the OS phones home through
 * metal-core; metalctl frees; wiped; waits again). The baseline, from the
 * same run, is the same QEMU booting the same discovery kernel and initrd
 * straight from files (no firmware PXE, no DHCP, no download, no control
 * plane) until metal-hammer's first log line: what the hardware and kernel
 * cost before anything of metal is involved.
 */
export async function benchVmBoot(): Promise<Comparison[]> {
  const why = skipReason();
  if (why) {
    console.log(`vm boot bench skipped: ${why}`);
    return [];
  }
  const dir = mkdtempSync(join(tmpdir(), "metal-vm-bench-"));
  try {
    await ensureDiscoveryImage();
    const baselineMs = await directBootMs();
    const file = join(dir, "timings.json");
    const run = spawnSync("npx", ["vitest", "run", "--config", "vitest.boot.config.ts", "test/boot/vm-boot.test.ts"], {
      env: { ...process.env, VM_BOOT_TIMINGS: file },
      encoding: "utf8",
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (run.status !== 0 || !existsSync(file)) throw new Error("the VM boot test failed: no timings");
    const t = JSON.parse(readFileSync(file, "utf8")) as { powerOnToWaitingMs?: number; allocateToPhonedHomeMs?: number; freeToWaitingMs?: number };
    const baseline = once("QEMU direct boot of the discovery image to metal-hammer's first line", baselineMs);
    const rows: [string, number | undefined][] = [
      ["VM power-on -> Waiting (PXE, iPXE, discovery image, register through metal-core), TCG", t.powerOnToWaitingMs],
      ["VM allocate -> Phoned Home (partition, install test OS, kexec, LLDP through metal-core), TCG", t.allocateToPhonedHomeMs],
      ["VM free -> Waiting (BMC reset, PXE, wipe), TCG", t.freeToWaitingMs],
    ];
    return rows
      .filter((r): r is [string, number] => r[1] !== undefined)
      .map(([what, ms]) => ({ what, subject: once(what, ms), baseline, target: "report only (no target yet)", extra: { wallMs: ms, baselineWallMs: baselineMs } }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function once(name: string, ms: number): Measurement {
  return { name, ops: 1, concurrency: 1, seconds: ms / 1000, perSecond: 1000 / ms, p50Ms: ms, p99Ms: ms };
}

function skipReason(): string | undefined {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return "needs Linux and root (network namespaces, tap devices)";
  if (spawnSync("sh", ["-c", "command -v qemu-system-x86_64 && command -v dnsmasq && command -v lldpd"]).status !== 0) return "qemu-system-x86_64, dnsmasq or lldpd is not installed";
  return undefined;
}

/** QEMU with the discovery kernel and initrd given directly; resolves with the time until the hammer logs its start. */
function directBootMs(): Promise<number> {
  const image = DISCOVERY_IMAGE_DIR;
  const uuid = randomUUID();
  const started = performance.now();
  const vm = spawn(
    "qemu-system-x86_64",
    [
      ...["-m", "1024", "-smp", "2", "-nographic", "-no-reboot", "-uuid", uuid],
      ...["-kernel", join(image, "vmlinuz"), "-initrd", join(image, "initrd.img")],
      ...["-netdev", "user,id=n0,restrict=on", "-device", "e1000,netdev=n0"],
      ...["-append", `console=ttyS0 metal.machine=${uuid} metal.partition=bench metal.credential=a.b.c metal.credential-expires=4102444800 metal.cores=127.0.0.1:9`],
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  return new Promise((resolveBoot, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      vm.kill("SIGKILL");
      reject(new Error(`the direct boot did not reach metal-hammer:\n${out.slice(-2000)}`));
    }, 600_000);
    vm.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("metal-hammer starting")) {
        clearTimeout(timer);
        const ms = performance.now() - started;
        vm.kill("SIGKILL");
        resolveBoot(ms);
      }
    });
    vm.once("exit", () => clearTimeout(timer));
  });
}
