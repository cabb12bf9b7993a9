/** What decides whether a machine record is still only a rumour about a machine. */
export interface MachineRecordFacts {
  partitionId: string | null;
  hardware: unknown;
  sizeId: string | null;
  allocation: unknown;
  state: string;
}

/**
 * Whether metal-hammer's Register in `partition` may take over the record of
 * a machine that another partition knows of.
 *
 * Events, Dhcp and BMC reports of an unknown machine create a bare record in
 * the sender's partition: that is how a new machine first shows up (pixie's
 * Dhcp on its first PXE boot), so they keep doing so. But any infra token can
 * name any UUID, and a bare record fixed to the wrong partition would keep the
 * real machine from ever registering where it is cabled. So a bare record is
 * no claim: until the machine has registered its hardware (and while nobody
 * allocated it and no operator locked or tainted it), the Register of another
 * partition takes it over, dropping what the other partition said about it
 * (events, BMC). Once registered, a machine stays in its partition.
 */
export function registrationMayTakeOver(record: MachineRecordFacts, partition: string): boolean {
  if (record.partitionId === null || record.partitionId === partition) return false;
  return record.hardware == null && record.sizeId === null && record.allocation == null && record.state === "available";
}
