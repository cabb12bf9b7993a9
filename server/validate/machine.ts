import type { MachineServiceCreateRequest, MachineServiceReinstallRequest, MachineServiceUpdateRequest } from "../../gen/metal/api/v1/machine_pb.js";
import { MachineRole } from "../../gen/metal/api/v1/machine_pb.js";
import { type Validator, validator } from "./validator.js";

const SSH_KEY = /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A console password may only be looked at with a reason worth logging. */
export const CONSOLE_PASSWORD_REASON_MIN = 10;

const sshKeys = (v: Validator, path: string, keys: readonly string[]) =>
  v.list(path, keys, 32, (p, k) => {
    if (!SSH_KEY.test(k.trim())) v.add(p, "is not an OpenSSH public key");
  });

const tags = (v: Validator, path: string, values: readonly string[]) => v.list(path, values, 64, (p, t) => v.requiredText(p, t, 256));

/** Id and project, which every request about one machine carries. */
export const machineRef = (req: { id: string; project: string }): Validator => validator().uuid("id", req.id).id("project", req.project, { max: 128 });

export function validateMachineCreate(req: MachineServiceCreateRequest): void {
  const v = validator().id("project", req.project, { max: 128 }).id("partition", req.partition).id("size", req.size);
  v.requiredText("image", req.image, 128).text("name", req.name, 63).text("description", req.description, 1024);
  if (req.name !== "" && !HOSTNAME.test(req.name)) v.add("name", "must be a lowercase host name label");
  if (req.hostname !== "" && !HOSTNAME.test(req.hostname)) v.add("hostname", "must be a lowercase host name label");
  if (req.role !== MachineRole.UNSPECIFIED) v.enumValue("role", req.role, MachineRole);
  if (req.networks.length === 0) v.add("networks", "at least the project's private network is required");
  v.list("networks", req.networks, 16, (p, n) => v.id(p, n, { max: 128 }));
  v.list("ips", req.ips, 16, (p, ip) => v.ip(p, ip));
  sshKeys(v, "ssh_keys", req.sshKeys);
  if (req.userData.length > 32 * 1024) v.add("user_data", "must be at most 32 KiB");
  v.list("placement_tags", req.placementTags, 16, (p, t) => v.requiredText(p, t, 128));
  tags(v, "tags", req.tags);
  v.list("dns_servers", req.dnsServers, 3, (p, s) => v.ip(p, s));
  v.list("ntp_servers", req.ntpServers, 5, (p, s) => v.host(p, s));
  if (req.machineId !== undefined) v.uuid("machine_id", req.machineId);
  if (req.filesystemLayout !== undefined) v.id("filesystem_layout", req.filesystemLayout);
  v.check();
}

export function validateMachineUpdate(req: MachineServiceUpdateRequest): void {
  const v = machineRef(req).text("description", req.description, 1024);
  if (req.version === 0n) v.add("version", "must be the version that was read");
  if (req.tags) tags(v, "tags.values", req.tags.values);
  if (req.sshKeys) sshKeys(v, "ssh_keys.values", req.sshKeys.values);
  v.check();
}

export function validateMachineReinstall(req: MachineServiceReinstallRequest): void {
  machineRef(req).requiredText("image", req.image, 128).check();
}

export function validateConsolePasswordRequest(req: { id: string; project: string; reason: string }): void {
  const v = machineRef(req).text("reason", req.reason, 1024);
  if (req.reason.trim().length < CONSOLE_PASSWORD_REASON_MIN) v.add("reason", `must say why, in at least ${CONSOLE_PASSWORD_REASON_MIN} characters`);
  v.check();
}
