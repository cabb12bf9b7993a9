import type { BootAnswer, BootRefusal } from "./boot-answer.js";

/**
 * iPXE scripts pixie serves. Every machine's iPXE is first handed
 * `/ipxe/boot.ipxe` (by pixie's proxy DHCP); that script asks for the
 * machine's own script by MAC and SMBIOS UUID, built from the same
 * BootService.Boot answer as pixiecore's API mode.
 */

/** Seconds a machine waits before asking again, by why it got nothing: later (503), pixie's upstream (502), not this machine (404). */
export const RETRY_SECONDS: Record<BootRefusal["status"], number> = { 503: 5, 502: 30, 404: 60 };
/** When even the machine's script could not be fetched (pixie down, network trouble). */
export const CHAIN_RETRY_SECONDS = 5;

/**
 * iPXE expands `${...}` in every script line and reads `||`/`&&` as
 * operators; a word with either would not reach the kernel as written. iPXE
 * has no escape for them, so such a word is refused rather than mangled.
 */
function checkWords(what: string, text: string): void {
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new Error(`${what} contains control characters, which an iPXE script cannot carry`);
  if (text.includes("$")) throw new Error(`${what} contains "$", which iPXE would expand`);
  if (text.split(/\s+/).some((w) => w === "||" || w === "&&")) throw new Error(`${what} contains "||" or "&&", which iPXE reads as operators`);
}

function checkUrl(what: string, url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${what} "${url.slice(0, 80)}" is not a URL`);
  }
  // iPXE fetches these itself, from wherever the partition's boot configuration points.
  if (!["http:", "https:", "tftp:"].includes(u.protocol)) throw new Error(`${what} must be an http, https or tftp URL for iPXE, not ${u.protocol}`);
  if (/\s/.test(url)) throw new Error(`${what} contains whitespace`);
  checkWords(what, url);
}

/** Text for iPXE's `echo`: printable ASCII without what iPXE would expand or read as an operator. */
function echoable(text: string): string {
  return text
    .replace(/[^ -~]/g, "?")
    .replaceAll("$", "?")
    .replaceAll("||", "|")
    .replaceAll("&&", "&")
    .slice(0, 200);
}

/**
 * The script every machine chains to first: it fetches `<base>/ipxe/<mac>?uuid=<uuid>`
 * with iPXE's own values for the interface it booted from (`netX`) and the
 * firmware's SMBIOS UUID, and asks again after a pause when that fails.
 */
export function bootScript(baseUrl: string): string {
  checkUrl("pixie's URL", baseUrl);
  const base = baseUrl.replace(/\/+$/, "");
  return [
    "#!ipxe",
    "# pixie: fetch this machine's own boot script by its MAC and SMBIOS UUID.",
    ":retry",
    `chain --autofree ${base}/ipxe/\${netX/mac}?uuid=\${uuid} || goto failed`,
    ":failed",
    `echo pixie: no boot script for \${netX/mac} yet, trying again in ${CHAIN_RETRY_SECONDS} seconds`,
    `sleep ${CHAIN_RETRY_SECONDS}`,
    "goto retry",
    "",
  ].join("\n");
}

/**
 * A machine's script: the partition's kernel with the command line, its
 * initrds by name (an EFI-stub kernel finds them through `initrd=<name>`),
 * then boot. Throws when a value cannot pass through iPXE unchanged.
 */
export function machineScript(answer: Pick<BootAnswer, "kernel" | "initrd" | "cmdline">): string {
  checkUrl("the kernel URL", answer.kernel);
  answer.initrd.forEach((u, i) => checkUrl(`initrd URL ${i + 1}`, u));
  checkWords("the kernel command line", answer.cmdline);
  const names = answer.initrd.map((_, i) => `initrd${i}`);
  const args = [...names.map((n) => `initrd=${n}`), answer.cmdline.trim()].filter((w) => w !== "").join(" ");
  return ["#!ipxe", `kernel --name kernel ${answer.kernel}${args ? ` ${args}` : ""}`, ...answer.initrd.map((u, i) => `initrd --name ${names[i]} ${u}`), "boot kernel", ""].join("\n");
}

/**
 * A machine that gets nothing to boot is told why on its console, waits, and
 * fails the chain, so that boot.ipxe asks again: a machine not known yet may
 * be registered meanwhile, and metal-cores register when their leaves come up.
 */
export function refusalScript(refusal: BootRefusal): string {
  const seconds = RETRY_SECONDS[refusal.status];
  return ["#!ipxe", `echo pixie: ${echoable(refusal.error)}`, `echo pixie: trying again in ${seconds} seconds`, `sleep ${seconds}`, "exit 1", ""].join("\n");
}
