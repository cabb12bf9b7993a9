import {
  SwitchMode,
  SwitchPortState,
  type SwitchServiceDeleteRequest,
  type SwitchServiceGetRequest,
  type SwitchServiceListRequest,
  type SwitchServiceMigrateRequest,
  type SwitchServicePortRequest,
  type SwitchServiceUpdateRequest,
} from "../../gen/metal/admin/v1/switch_pb.js";
import { validator } from "./validator.js";

// Switch ids are host names as metal-core registers them (the same rule as infra Register).

export function validateSwitchGet(req: SwitchServiceGetRequest | SwitchServiceDeleteRequest): void {
  validator().id("id", req.id).check();
}

export function validateSwitchList(req: SwitchServiceListRequest): void {
  const v = validator();
  if (req.partition !== undefined) v.id("partition", req.partition);
  if (req.rack !== undefined) v.id("rack", req.rack);
  v.check();
}

export function validateSwitchUpdate(req: SwitchServiceUpdateRequest): void {
  const v = validator().id("id", req.id);
  if (req.version === 0n) v.add("version", "is required: send the version you read");
  v.text("description", req.description, 1024).text("console_command", req.consoleCommand, 1024);
  if (req.mode !== undefined) v.enumValue("mode", req.mode, SwitchMode);
  v.check();
}

export function validateSwitchPort(req: SwitchServicePortRequest): void {
  const v = validator().id("id", req.id).requiredText("nic", req.nic, 64);
  if (req.state !== SwitchPortState.UP && req.state !== SwitchPortState.DOWN) v.add("state", "must be UP or DOWN");
  v.check();
}

export function validateSwitchMigrate(req: SwitchServiceMigrateRequest): void {
  const v = validator().id("old_switch", req.oldSwitch).id("new_switch", req.newSwitch);
  if (req.oldSwitch !== "" && req.oldSwitch === req.newSwitch) v.add("new_switch", "must differ from old_switch");
  v.check();
}
