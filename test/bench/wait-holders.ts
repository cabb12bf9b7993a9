import { spawn } from "node:child_process";
import type { HolderOrder, HolderReport } from "./wait-holder.js";

/** `count` wait-holder.ts processes; `order(h)` says what holder h holds, `stop()` ends them all. */
export function startHolders(count: number, onReport: (report: HolderReport) => void) {
  const procs = Array.from({ length: count }, () => {
    const proc = spawn(process.execPath, ["--import", "tsx", "test/bench/wait-holder.ts"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    proc.on("message", (report: HolderReport) => onReport(report));
    proc.once("exit", (code, signal) => {
      if (code !== 0) onReport({ failed: `a Wait holder exited with ${code ?? signal}` });
    });
    return proc;
  });
  return {
    order(of: (holder: number) => HolderOrder): void {
      procs.forEach((proc, h) => proc.send(of(h)));
    },
    stop(): void {
      for (const proc of procs) if (proc.connected) proc.disconnect();
    },
  };
}
