import { execFile } from "node:child_process";
import { access } from "node:fs/promises";

let vtysh: Promise<string | undefined> | undefined;

/** FRR's vtysh, when installed (Debian puts it in /usr/bin). */
export function findVtysh(): Promise<string | undefined> {
  vtysh ??= (async () => {
    for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":").concat("/usr/bin", "/usr/sbin")) {
      const p = `${dir}/vtysh`;
      if (
        await access(p).then(
          () => true,
          () => false,
        )
      )
        return p;
    }
    return undefined;
  })();
  return vtysh;
}

/**
 * Parses an FRR configuration with FRR itself, without starting daemons
 * (`vtysh -C -f FILE`: exit 0 when valid, else the offending lines). Resolves
 * false when FRR is not installed, so callers can tell a skipped check.
 */
export async function frrDryRun(path: string, timeoutMs = 10_000): Promise<boolean> {
  const bin = await findVtysh();
  if (!bin) return false;
  await new Promise<void>((resolve, reject) => {
    execFile(bin, ["-C", "-f", path], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const detail = `${stdout}\n${stderr}`
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "")
        .slice(0, 10)
        .join("; ");
      reject(new Error(`FRR refuses the config: ${detail || err.message}`));
    });
  });
  return true;
}
