import type { MachineServiceCreateRequest } from "../../gen/metal/api/v1/machine_pb.js";
import { validator } from "./validator.js";

const SSH_KEY = /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function validateMachineCreate(req: MachineServiceCreateRequest): void {
  const v = validator().id("project", req.project, { max: 128 }).id("partition", req.partition).id("size", req.size);
  v.requiredText("image", req.image, 128).text("name", req.name, 63).text("description", req.description, 1024);
  if (req.name !== "" && !HOSTNAME.test(req.name)) v.add("name", "must be a lowercase host name label");
  if (req.hostname !== "" && !HOSTNAME.test(req.hostname)) v.add("hostname", "must be a lowercase host name label");
  if (req.networks.length === 0) v.add("networks", "at least the project's private network is required");
  v.list("networks", req.networks, 16, (p, n) => v.id(p, n, { max: 128 }));
  v.list("ssh_keys", req.sshKeys, 32, (p, k) => {
    if (!SSH_KEY.test(k.trim())) v.add(p, "is not an OpenSSH public key");
  });
  if (req.userData.length > 32 * 1024) v.add("user_data", "must be at most 32 KiB");
  v.list("placement_tags", req.placementTags, 16, (p, t) => v.text(p, t, 128));
  if (req.machineId !== undefined) v.uuid("machine_id", req.machineId);
  v.check();
}
