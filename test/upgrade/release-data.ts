/**
 * Representative rows as the previous release (server/db/releases.json, r18:
 * metal 0010_image_sha256, masterdata 0002_never_reuse_ids) writes them: raw
 * SQL against that schema, in the shapes its code stores (JSON documents of
 * allocations, hardware, layouts, roles; enum numbers), so that the upgrade
 * test reads back what an operator's database of that release holds. Only
 * columns that release knows are named; the statements also run against the
 * current schema, as the previous release's replicas do during a rolling update.
 */

/** A SQL literal: strings quoted, objects as JSON, null as NULL. */
function lit(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return `'${s.replaceAll("'", "''")}'`;
}

export interface ReleaseKeys {
  /** The signing key the previous release made (id, private and public JWK). */
  signingKey: { id: string; privateJwk: object; publicJwk: object };
  /** The SSH console's host key (OpenSSH private key, public key line). */
  hostKey: { privateKey: string; publicKey: string };
}

/** The ids of the rows below; `suffix` makes a second set (the old writer's rows after the upgrade). */
export function releaseIds(suffix = "") {
  const n = suffix === "" ? "0" : "1";
  return {
    partition: `p1${suffix}`,
    size: `s1${suffix}`,
    image: `debian-12.0.2025010${n}`,
    layout: `s1-default${suffix}`,
    superNetwork: `super${suffix}`,
    childNetwork: `0194c0de-0000-7000-8000-00000000000${n}`,
    allocated: `7d3c1e9a-5b2f-4c1d-9e8a-00000000000${n}`,
    waiting: `7d3c1e9a-5b2f-4c1d-9e8a-00000000001${n}`,
    allocationUuid: `0194c0de-0000-7000-8000-00000000010${n}`,
    ipV4: `0194c0de-0000-7000-8000-00000000020${n}`,
    ipV6: `0194c0de-0000-7000-8000-00000000021${n}`,
    ipStatic: `0194c0de-0000-7000-8000-00000000022${n}`,
    commandDone: `0194c0de-0000-7000-8000-00000000030${n}`,
    commandPending: `0194c0de-0000-7000-8000-00000000031${n}`,
    adminToken: `0194c0de-0000-7000-8000-00000000040${n}`,
    aliceToken: `0194c0de-0000-7000-8000-00000000041${n}`,
    revokedToken: `0194c0de-0000-7000-8000-00000000042${n}`,
    reservation: `0194c0de-0000-7000-8000-00000000050${n}`,
    leaves: [`leaf01${suffix}`, `leaf02${suffix}`],
    vrf: suffix === "" ? 53995 : 53996,
    asn: suffix === "" ? 4210012596 : 4210012597,
    // Tenant networks of the two sets do not overlap: 10.0.0.0/16 and 10.1.0.0/16.
    v4: suffix === "" ? "10.0" : "10.1",
    v6: suffix === "" ? "2001:db8:0" : "2001:db8:1",
  };
}

const hardware = (leaves: string[], macBase: string) => ({
  memoryBytes: 17179869184,
  cpus: [{ vendor: "Intel", model: "Xeon", cores: 4, threads: 8 }],
  disks: [{ name: "/dev/sda", sizeBytes: 240000000000 }],
  nics: leaves.map((l, i) => ({ name: `eth${i}`, mac: `${macBase}:0${i}`, neighbors: [{ hostname: l, port: "swp1" }] })),
  gpus: [],
});

const events = (types: [string, string][]) => types.map(([type, message], i) => ({ time: new Date(Date.UTC(2026, 10, 1, 12, 0, 10 - i)).toISOString(), type, message }));

/** The metal database's rows of the previous release. `withKeys` false for the second set (keys exist once). */
export function metalReleaseSql(keys: ReleaseKeys, suffix = "", withKeys = true): string {
  const id = releaseIds(suffix);
  const [leafA, leafB] = id.leaves as [string, string];
  const allocation = {
    uuid: id.allocationUuid,
    project: "pa",
    name: "web1",
    description: "the web server",
    hostname: "web1",
    role: "machine",
    image: id.image,
    filesystemLayout: id.layout,
    sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1cGdyYWRldGVzdGtleW9ubHkwMDAwMDAwMDAwMDA upgrade@test"],
    userData: "",
    asn: id.asn,
    networks: [{ network: id.childNetwork, ips: [`${id.v4}.243.73`, `${id.v6}:4f23::73`], vrf: id.vrf, primary: true }],
    createdAt: "2026-11-01T12:00:20.000Z",
    createdBy: "admin",
    consolePassword: "not-a-real-password",
    bootInfo: { imageId: id.image, primaryDisk: "/dev/sda", osPartition: "/dev/sda2", initrd: "boot/initrd.img", cmdline: "console=ttyS0", kernel: "boot/vmlinuz", bootloaderId: "debian" },
    succeeded: true,
    dnsServers: ["1.1.1.1"],
    ntpServers: [],
  };
  const statements = [
    `insert into partitions (id, name, description, boot_image_url, boot_kernel_url, boot_command_line, dns_servers, labels)
       values (${lit(id.partition)}, 'rack row 1', 'first partition', 'http://images.example/pxe/initrd.img', 'http://images.example/pxe/vmlinuz', 'console=ttyS0', '{1.1.1.1}', '{"site": "fra"}')`,
    `insert into sizes (id, name, constraints) values (${lit(id.size)}, 'small', ${lit([
      { type: 1, min: 4, max: 4, identifier: "" },
      { type: 2, min: 17179869184, max: 17179869184, identifier: "" },
      { type: 3, min: 1, max: 500000000000, identifier: "/dev/sd*" },
    ])})`,
    `insert into images (id, url, features, os, os_version, classification, expires_at, version_key, sha256)
       values (${lit(id.image)}, 'http://images.example/debian.tar', '{1}', 'debian', ${lit(id.image.slice("debian-".length))}, 1, now() + interval '90 days', ${lit(id.image.slice("debian-".length))}, ${lit("ab".repeat(32))})`,
    `insert into filesystem_layouts (id, spec) values (${lit(id.layout)}, ${lit({
      constraints: { sizes: [id.size], images: {} },
      disks: [
        {
          device: "/dev/sda",
          wipeOnReinstall: true,
          partitions: [
            { number: 1, label: "", sizeMib: 512, gptType: 1 },
            { number: 2, label: "", sizeMib: 0, gptType: 2 },
          ],
        },
      ],
      filesystems: [
        { path: "/boot/efi", device: "/dev/sda1", format: 1, label: "", mountOptions: [], createOptions: [] },
        { path: "/", device: "/dev/sda2", format: 3, label: "", mountOptions: [], createOptions: [] },
      ],
      raid: [],
      volumeGroups: [],
      logicalVolumes: [],
    })})`,
    `insert into networks (id, name, kind, partition_id, default_child_length_v4, default_child_length_v6)
       values (${lit(id.superNetwork)}, 'tenant networks', 1, ${lit(id.partition)}, 24, 64)`,
    `insert into prefixes (prefix, network_id, family, scope) values
       (${lit(`${id.v4}.0.0/16`)}, ${lit(id.superNetwork)}, 4, '0.0.0.0/0'),
       (${lit(`${id.v6}::/48`)}, ${lit(id.superNetwork)}, 6, '::/0')`,
    `insert into vrfs (vrf, owner) values (${id.vrf}, ${lit(id.childNetwork)})`,
    `insert into networks (id, name, kind, partition_id, project, parent_network_id, vrf)
       values (${lit(id.childNetwork)}, 'pa private', 4, ${lit(id.partition)}, 'pa', ${lit(id.superNetwork)}, ${id.vrf})`,
    `insert into prefixes (prefix, network_id, family, scope) values
       (${lit(`${id.v4}.243.0/24`)}, ${lit(id.childNetwork)}, 4, ${lit(`${id.v4}.0.0/16`)}),
       (${lit(`${id.v6}:4f23::/64`)}, ${lit(id.childNetwork)}, 6, ${lit(`${id.v6}::/48`)})`,
    `insert into switches (id, partition_id, rack_id, os_vendor, os_version, management_ip, nics, description, last_sync, machine_endpoint) values
       (${lit(leafA)}, ${lit(id.partition)}, 'r1', 'Cumulus', '5.9', '10.255.0.1', '[{"name": "swp1", "identifier": "swp1", "actual": "up"}]', 'leaf a', ${lit({ time: "2026-11-01T12:00:30.000Z", durationMs: 120, error: "", generation: 1 })}, ''),
       (${lit(leafB)}, ${lit(id.partition)}, 'r1', 'Cumulus', '5.9', '10.255.0.2', '[{"name": "swp1", "identifier": "swp1", "actual": "up"}]', 'leaf b', ${lit({ time: "2026-11-01T12:00:31.000Z", durationMs: 150, error: "", generation: 1 })}, '')`,
    `insert into machines (id, partition_id, size_id, rack_id, hardware, bios, state, waiting_until, allocation, project, tags, bmc, led_state, credential_generation) values
       (${lit(id.allocated)}, ${lit(id.partition)}, ${lit(id.size)}, 'r1', ${lit(hardware(id.leaves, `0c:c4:7a:0${suffix === "" ? 0 : 1}:00`))}, '{"vendor": "AMI", "version": "2.1", "date": "2024-01-01"}', 'available', null,
        ${lit(allocation)}, 'pa', ${lit([`metal.io/primary-asn=${id.asn}`, "metal.io/rack=r1", "metal.io/role=machine", "team=web"])},
        ${lit({ address: `10.254.0.${suffix === "" ? 10 : 20}:623`, mac: "0c:c4:7a:ff:00:10", user: "ADMIN", password: "bmc-password", interface: "lanplus", version: "1.2", powerState: "ON", fru: { "board-mfg": "Supermicro" }, lastUpdated: "2026-11-01T12:00:40.000Z" })}, 'off', 1),
       (${lit(id.waiting)}, ${lit(id.partition)}, ${lit(id.size)}, 'r1', ${lit(hardware([leafA, leafB], `0c:c4:7a:1${suffix === "" ? 0 : 1}:00`))}, null, 'available', now() + interval '1 hour', null, null, '[]', null, '', 0)`,
    `insert into machine_connections (switch_id, switch_port, machine_id, machine_nic, vrf) values
       (${lit(leafA)}, 'swp1', ${lit(id.allocated)}, 'eth0', ${lit(`vrf${id.vrf}`)}),
       (${lit(leafB)}, 'swp1', ${lit(id.allocated)}, 'eth1', ${lit(`vrf${id.vrf}`)})`,
    `insert into machine_events (machine_id, liveliness, events, last_event_time) values
       (${lit(id.allocated)}, 'Alive', ${lit(
         events([
           ["Phoned Home", ""],
           ["Booting New Kernel", ""],
           ["Installing", ""],
           ["Waiting", ""],
           ["Registering", ""],
           ["Preparing", ""],
           ["PXE Booting", "machine sent extended dhcp request"],
         ]),
       )}, now()),
       (${lit(id.waiting)}, 'Alive', ${lit(
         events([
           ["Waiting", ""],
           ["Registering", ""],
           ["Preparing", ""],
           ["PXE Booting", "machine sent extended dhcp request"],
         ]),
       )}, now())`,
    `insert into asns (asn, owner) values (${id.asn}, ${lit(id.allocated)})`,
    `insert into ips (id, ip, prefix, network_id, project, name, description, type, machine_id, labels) values
       (${lit(id.ipV4)}, ${lit(`${id.v4}.243.73`)}, ${lit(`${id.v4}.243.0/24`)}, ${lit(id.childNetwork)}, 'pa', 'web1', 'autoassigned', 1, ${lit(id.allocated)}, '{}'),
       (${lit(id.ipV6)}, ${lit(`${id.v6}:4f23::73`)}, ${lit(`${id.v6}:4f23::/64`)}, ${lit(id.childNetwork)}, 'pa', 'web1', 'autoassigned', 1, ${lit(id.allocated)}, '{}'),
       (${lit(id.ipStatic)}, ${lit(`${id.v4}.243.200`)}, ${lit(`${id.v4}.243.0/24`)}, ${lit(id.childNetwork)}, 'pa', 'vip', 'kept across frees', 2, null, '{"use": "vip"}')`,
    `insert into bmc_commands (id, machine_id, partition_id, command, status, result, deadline, created_at) values
       (${lit(id.commandDone)}, ${lit(id.allocated)}, ${lit(id.partition)}, 'BOOT_FROM_DISK', 'done', 'Set Boot Device to disk', now() - interval '1 day', now() - interval '1 day'),
       (${lit(id.commandPending)}, ${lit(id.allocated)}, ${lit(id.partition)}, 'LED_ON', 'pending', '', now() + interval '1 hour', now())`,
    `insert into size_reservations (id, name, size_id, project, partition_ids, amount) values (${lit(id.reservation)}, 'web tier', ${lit(id.size)}, 'pa', ${lit(`{${id.partition}}`)}, 1)`,
    `insert into tokens (id, subject, description, roles, created_by, created_at, expires_at, revoked_at, parent_id, bootstrap) values
       (${lit(id.adminToken)}, 'admin', 'operator admin token created on first start', '{"admin": 2, "tenants": {}, "projects": {}, "infraPartition": ""}', 'metal-api', now() - interval '30 days', now() + interval '300 days', null, null, ${suffix === ""}),
       (${lit(id.aliceToken)}, 'alice', 'alice in project pa', '{"admin": 0, "tenants": {}, "projects": {"pa": 2}, "infraPartition": ""}', 'admin', now() - interval '1 day', now() + interval '30 days', null, ${lit(id.adminToken)}, false),
       (${lit(id.revokedToken)}, 'mallory', 'revoked', '{"admin": 0, "tenants": {}, "projects": {"pa": 3}, "infraPartition": ""}', 'admin', now() - interval '2 days', now() + interval '30 days', now() - interval '1 day', ${lit(id.adminToken)}, false)`,
  ];
  if (withKeys) {
    statements.push(
      `insert into signing_keys (id, algorithm, private_jwk, public_jwk, created_at) values (${lit(keys.signingKey.id)}, 'EdDSA', ${lit(keys.signingKey.privateJwk)}, ${lit(keys.signingKey.publicJwk)}, now() - interval '30 days')`,
      `insert into console_host_keys (id, algorithm, private_key, public_key) values ('default', 'ssh-ed25519', ${lit(keys.hostKey.privateKey)}, ${lit(keys.hostKey.publicKey)})`,
    );
  }
  return statements.join(";\n");
}

/** The masterdata database's rows of the previous release: tenants, projects, memberships, their history and used ids. */
export function masterdataReleaseSql(): string {
  const at = "2026-11-01 12:00:00+00";
  const tenant = (id: string, name: string) => ({
    id,
    name,
    labels: [],
    quotas: {},
    version: 1,
    createdAt: "2026-11-01T12:00:00.000Z",
    updatedAt: "2026-11-01T12:00:00.000Z",
    annotations: {},
    description: "",
    defaultQuotas: {},
  });
  const project = (id: string, name: string, quotas: object) => ({
    id,
    name,
    labels: [],
    quotas,
    version: 1,
    tenantId: "t",
    createdAt: "2026-11-01T12:00:00.000Z",
    updatedAt: "2026-11-01T12:00:00.000Z",
    annotations: {},
    description: "",
  });
  return [
    `insert into tenants (id, annotations, labels, created_at, updated_at, version, name, description, default_quotas, quotas) values
       ('t', '{"owner": "ops"}', '{env=prod}', ${lit(at)}, ${lit(at)}, 1, 't', 'the tenant', '{}', '{}'),
       ('alice', '{}', '{}', ${lit(at)}, ${lit(at)}, 1, 'alice', 'a user', '{}', '{}'),
       ('gone', '{}', '{}', ${lit(at)}, ${lit(at)}, 1, 'gone', 'deleted below', '{}', '{}')`,
    `insert into projects (id, annotations, labels, created_at, updated_at, version, name, description, tenant_id, quotas) values
       ('pa', '{}', '{tier=web}', ${lit(at)}, ${lit(at)}, 1, 'a', 'project a', 't', '{"machine": 3}'),
       ('pb', '{}', '{}', ${lit(at)}, ${lit(at)}, 1, 'b', 'project b', 't', '{}')`,
    `insert into tenant_members (id, annotations, labels, created_at, updated_at, version, tenant_id, member_id, role) values
       ('0194c0de-0000-7000-8000-000000000601', '{}', '{}', ${lit(at)}, ${lit(at)}, 1, 't', 'alice', 3)`,
    `insert into project_members (id, annotations, labels, created_at, updated_at, version, project_id, tenant_id, role) values
       ('0194c0de-0000-7000-8000-000000000602', '{}', '{}', ${lit(at)}, ${lit(at)}, 1, 'pa', 'alice', 2)`,
    `insert into history (kind, entity_id, op, at, state) values
       ('Tenant', 't', 'create', ${lit(at)}, ${lit(tenant("t", "t"))}),
       ('Tenant', 'alice', 'create', ${lit(at)}, ${lit(tenant("alice", "alice"))}),
       ('Project', 'pa', 'create', ${lit(at)}, ${lit(project("pa", "a", { machine: 3 }))}),
       ('Project', 'pb', 'create', ${lit(at)}, ${lit(project("pb", "b", {}))}),
       ('Tenant', 'gone', 'create', ${lit(at)}, ${lit(tenant("gone", "gone"))}),
       ('Tenant', 'gone', 'delete', '2026-11-02 12:00:00+00', ${lit(tenant("gone", "gone"))})`,
    `delete from tenants where id = 'gone'`,
    `insert into used_ids (kind, id, created_at, deleted_at) values
       ('Tenant', 't', ${lit(at)}, null), ('Tenant', 'alice', ${lit(at)}, null), ('Tenant', 'gone', ${lit(at)}, '2026-11-02 12:00:00+00'),
       ('Project', 'pa', ${lit(at)}, null), ('Project', 'pb', ${lit(at)}, null)`,
  ].join(";\n");
}
