import { createHash } from "node:crypto";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { ProjectService as MdProjects } from "../../gen/masterdata/v1/project_pb.js";
import { TenantService as MdTenants } from "../../gen/masterdata/v1/tenant_pb.js";
import { FilesystemLayoutService as AdminLayouts } from "../../gen/metal/admin/v1/filesystem_layout_pb.js";
import { ImageService as AdminImages } from "../../gen/metal/admin/v1/image_pb.js";
import { NetworkService as AdminNetworks } from "../../gen/metal/admin/v1/network_pb.js";
import { PartitionService as AdminPartitions } from "../../gen/metal/admin/v1/partition_pb.js";
import { SizeService as AdminSizes } from "../../gen/metal/admin/v1/size_pb.js";
import { Format, GptType } from "../../gen/metal/api/v1/filesystem_layout_pb.js";
import { ImageFeature, ImageService } from "../../gen/metal/api/v1/image_pb.js";
import { NetworkService, NetworkType } from "../../gen/metal/api/v1/network_pb.js";
import { PartitionService } from "../../gen/metal/api/v1/partition_pb.js";
import { SizeConstraintType } from "../../gen/metal/api/v1/size_pb.js";
import type { SimImage } from "../sim/machine.js";
import { ensureToken } from "./tenant.js";

const GiB = 2n ** 30n;

/** The names the lab seeds; the printed hints and the tests use them. */
export const LAB = {
  partition: "lab",
  rack: "rack01",
  size: "sim-c1",
  layout: "sim-default",
  machineImage: "debian-12.0.20250101",
  firewallImage: "firewall-ubuntu-3.0.20250101",
  superNetwork: "lab-super",
  underlay: "lab-underlay",
  internet: "internet",
  tenant: "lab-tenant",
  project: "lab-project",
} as const;

/** The images the lab serves, in the format the simulated machines unpack. */
export const LAB_IMAGES: Record<string, SimImage> = {
  [LAB.machineImage]: { os: "debian", version: "12.0", kernel: "/boot/vmlinuz-6.1.0-sim", initrd: "/boot/initrd.img-6.1.0-sim", cmdline: "console=ttyS1,115200n8" },
  [LAB.firewallImage]: { os: "firewall-ubuntu", version: "3.0", kernel: "/boot/vmlinuz-6.8.0-sim", initrd: "/boot/initrd.img-6.8.0-sim", cmdline: "console=ttyS1,115200n8" },
};

/** The file the lab serves for an image: what a simulated machine unpacks. */
export const labImageFile = (id: string): Buffer => Buffer.from(JSON.stringify(LAB_IMAGES[id]));

export interface Seeded {
  infraToken: string;
  projectNetwork: string;
}

/** Runs `create`; an object that is there already (a second start) is fine. */
async function ensure(create: () => Promise<unknown>): Promise<boolean> {
  try {
    await create();
    return true;
  } catch (err) {
    if (ConnectError.from(err).code === Code.AlreadyExists) return false;
    throw err;
  }
}

/**
 * Seeds what a tenant needs to allocate a machine or a firewall in the lab
 * partition. Idempotent: existing objects are kept, only the lab's own URLs
 * (which may move between starts) are brought up to date.
 */
export async function seed(opts: { transport: Transport; labUrl: string; apiUrl: string; infraTokenFile: string; verify: (token: string) => Promise<boolean> }): Promise<Seeded> {
  const t = opts.transport;
  const bootConfig = {
    kernelUrl: `${opts.labUrl}/pxe/metal-hammer-kernel`,
    imageUrl: `${opts.labUrl}/pxe/metal-hammer-initrd.img`,
    commandLine: `console=ttyS1,115200n8 METAL_API_URL=${opts.apiUrl}`,
  };
  const partitions = createClient(AdminPartitions, t);
  if (!(await ensure(() => partitions.create({ id: LAB.partition, name: "lab", description: "simulated partition of metal-lab", bootConfig, dnsServers: ["1.1.1.1", "8.8.8.8"] })))) {
    const p = (await createClient(PartitionService, t).get({ id: LAB.partition })).partition!;
    if (p.bootConfig?.kernelUrl !== bootConfig.kernelUrl || p.bootConfig?.imageUrl !== bootConfig.imageUrl || p.bootConfig?.commandLine !== bootConfig.commandLine) {
      await partitions.update({ id: LAB.partition, version: p.meta!.version, bootConfig });
    }
  }
  await ensure(() =>
    createClient(AdminSizes, t).create({
      id: LAB.size,
      name: "simulated c1",
      description: "4 cores, 16 GiB, one disk: what every lab machine has",
      constraints: [
        { type: SizeConstraintType.CORES, min: 4n, max: 4n },
        { type: SizeConstraintType.MEMORY, min: 16n * GiB, max: 16n * GiB },
        { type: SizeConstraintType.STORAGE, min: 1n, max: 500_000_000_000n, identifier: "/dev/sd*" },
      ],
    }),
  );
  const images = createClient(AdminImages, t);
  for (const [id, feature] of [
    [LAB.machineImage, ImageFeature.MACHINE],
    [LAB.firewallImage, ImageFeature.FIREWALL],
  ] as const) {
    const url = `${opts.labUrl}/images/${id}.img`;
    // The contract carries the checksum, so metal-hammer needs no <url>.sha256 (the lab serves one for older images).
    const sha256 = createHash("sha256").update(labImageFile(id)).digest("hex");
    if (!(await ensure(() => images.create({ id, url, sha256, features: [feature], description: "served by metal-lab" })))) {
      const img = (await createClient(ImageService, t).get({ id })).image!;
      if (img.url !== url || img.sha256 !== sha256) await images.update({ id, version: img.meta!.version, url, sha256 });
    }
  }
  await ensure(() =>
    createClient(AdminLayouts, t).create({
      filesystemLayout: {
        id: LAB.layout,
        name: "default",
        description: "EFI partition and one root filesystem",
        disks: [
          {
            device: "/dev/sda",
            wipeOnReinstall: true,
            partitions: [
              { number: 1, sizeMib: 512n, gptType: GptType.BOOT, label: "efi" },
              { number: 2, sizeMib: 0n, gptType: GptType.LINUX, label: "root" },
            ],
          },
        ],
        filesystems: [
          { path: "/boot/efi", device: "/dev/sda1", format: Format.VFAT, label: "efi" },
          { path: "/", device: "/dev/sda2", format: Format.EXT4, label: "root" },
        ],
        constraints: { sizes: [LAB.size], images: {} },
      },
    }),
  );
  const networks = createClient(AdminNetworks, t);
  await ensure(() => networks.create({ id: LAB.superNetwork, name: "tenant networks", type: NetworkType.SUPER, partition: LAB.partition, prefixes: ["10.0.0.0/16"], defaultChildPrefixLength: { ipv4: 22 } }));
  await ensure(() => networks.create({ id: LAB.underlay, name: "underlay", type: NetworkType.UNDERLAY, partition: LAB.partition, prefixes: ["10.254.0.0/22"] }));
  await ensure(() => networks.create({ id: LAB.internet, name: "internet", type: NetworkType.EXTERNAL, prefixes: ["185.1.2.0/24"], destinationPrefixes: ["0.0.0.0/0"], nat: true }));
  await ensure(() => createClient(MdTenants, t).create({ tenant: { meta: { id: LAB.tenant }, name: "lab tenant", description: "the tenant of metal-lab" } }));
  await ensure(() => createClient(MdProjects, t).create({ project: { meta: { id: LAB.project }, name: "lab project", description: "the project of metal-lab", tenantId: LAB.tenant } }));
  const tenantNetworks = createClient(NetworkService, t);
  const existing = (await tenantNetworks.list({ project: LAB.project })).networks.find((n) => n.type === NetworkType.CHILD && n.partition === LAB.partition);
  const projectNetwork = existing?.id ?? (await tenantNetworks.create({ project: LAB.project, partition: LAB.partition, name: "lab-net", description: "private network of the lab project" })).network!.id;

  // One infra token for the lab's daemons, kept beside the admin token; a new one only when it no longer works.
  const infraToken = await ensureToken({
    transport: t,
    file: opts.infraTokenFile,
    subject: "metal-lab",
    description: "metal-core, metal-bmc, metal-hammer and pixie of the lab partition",
    roles: { infraPartition: LAB.partition },
    verify: opts.verify,
  });
  return { infraToken, projectNetwork };
}
