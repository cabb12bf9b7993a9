import type { DbHandle } from "../../db/handle.js";
import type { SwitchConfigInput } from "../../domain/switch-config.js";
import { switchSessionRepository as sessions } from "../../repositories/switch-repository.js";
import { singleFlightBatches } from "../batches.js";

/** Reads a switch's desired config inputs; undefined when the switch is gone. */
export type SwitchConfigReader = (switchId: string) => Promise<SwitchConfigInput | undefined>;

/**
 * One per replica: when a change reaches many switches at once, their
 * sessions' reads become a few statements for all of them instead of one
 * each (see singleFlightBatches for why a read still sees every change
 * committed before it was asked for).
 */
export function createSwitchConfigReader(db: DbHandle): SwitchConfigReader {
  return singleFlightBatches(async (ids: readonly string[]) => {
    const inputs = await sessions.configInputs(db, ids);
    return ids.map((id) => inputs.get(id));
  });
}
