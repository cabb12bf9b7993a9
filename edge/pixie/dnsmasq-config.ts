import { isIP } from "node:net";

/** The iPXE builds pixie hands to PXE firmware over TFTP (Debian's `ipxe` package ships both). */
export const IPXE_BIOS = "undionly.kpxe";
export const IPXE_EFI = "ipxe.efi";

export interface DnsmasqConfigInput {
  /** The PXE network's interface, where the partition's DHCP server hands out addresses. */
  iface: string;
  /** An address of the PXE network (e.g. its network address 10.0.0.0): proxy DHCP answers there. */
  network: string;
  /** The directory TFTP serves: the iPXE builds (IPXE_BIOS, IPXE_EFI). */
  tftpRoot: string;
  /** boot.ipxe as machines reach pixie's HTTP server, handed to iPXE instead of a TFTP file. */
  bootScriptUrl: string;
  /** dnsmasq's lease/pid files go to the state dir; no lease is ever written in proxy mode. */
  stateDir: string;
}

/** A value in dnsmasq's config: one line, no quote that would end a quoted text early. */
function confValue(what: string, v: string): string {
  if (v === "" || /[\u0000-\u001f\u007f",#]/.test(v)) throw new Error(`${what} "${v.slice(0, 80)}" cannot go into dnsmasq's config`);
  return v;
}

/**
 * dnsmasq as the partition's proxy DHCP and TFTP server for PXE: it hands out
 * no addresses (the partition's own DHCP server does), only boot files.
 * Firmware PXE gets iPXE over TFTP, the BIOS or the UEFI build by its client
 * architecture (option 93); iPXE itself (user class "iPXE", option 175) gets
 * pixie's boot.ipxe over HTTP instead, which ends the loop of iPXE loading
 * iPXE.
 *
 * In proxy mode dnsmasq offers boot files through `pxe-service` (a PXE boot
 * menu of one entry per architecture, answered without a prompt);
 * `dhcp-boot` alone is not sent to PXE firmware there. A basename with a
 * suffix is served as written (dnsmasq 2.76 and later add ".0" only to
 * basenames without one).
 */
export function renderDnsmasqConfig(c: DnsmasqConfigInput): string {
  if (isIP(c.network) !== 4) throw new Error(`the proxy DHCP network must be an IPv4 address, not "${c.network}"`);
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(c.iface)) throw new Error(`"${c.iface}" is not an interface name`);
  const url = new URL(c.bootScriptUrl);
  if (url.protocol !== "http:") throw new Error(`boot.ipxe's URL must be http (iPXE's default build has no TLS), not "${c.bootScriptUrl}"`);
  const root = confValue("the TFTP root", c.tftpRoot);
  const boot = confValue("boot.ipxe's URL", c.bootScriptUrl);
  const state = confValue("the state dir", c.stateDir);
  return [
    "# Written by pixie on every start; changes here are lost.",
    "# No DNS: only proxy DHCP and TFTP for PXE.",
    "port=0",
    `interface=${c.iface}`,
    "bind-interfaces",
    `dhcp-range=${c.network},proxy`,
    `dhcp-leasefile=${state}/dnsmasq.leases`,
    // pixie supervises it: no pid file (two dnsmasqs on one host would fight over the default one).
    "pid-file=",
    "log-dhcp",
    // Some PXE ROMs find the boot file only in the header's own field.
    "dhcp-no-override",
    "enable-tftp",
    `tftp-root=${root}`,
    // Tag requests from iPXE: its user class, and option 175 that every iPXE build sends.
    "dhcp-userclass=set:ipxe,iPXE",
    "dhcp-match=set:ipxe,175",
    // PXE firmware: iPXE for its architecture, over TFTP.
    `pxe-service=tag:!ipxe,x86PC,"metal: iPXE",${IPXE_BIOS}`,
    `pxe-service=tag:!ipxe,BC_EFI,"metal: iPXE (UEFI)",${IPXE_EFI}`,
    `pxe-service=tag:!ipxe,X86-64_EFI,"metal: iPXE (UEFI)",${IPXE_EFI}`,
    // iPXE: the boot script over HTTP.
    `pxe-service=tag:ipxe,x86PC,"metal: boot script",${boot}`,
    `pxe-service=tag:ipxe,BC_EFI,"metal: boot script",${boot}`,
    `pxe-service=tag:ipxe,X86-64_EFI,"metal: boot script",${boot}`,
    `dhcp-boot=tag:ipxe,${boot}`,
    "",
  ].join("\n");
}
