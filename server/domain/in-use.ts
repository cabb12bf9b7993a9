/**
 * What still refers to an entity an operator wants to delete, and how the
 * refusal reads. Pure: the usage repository counts, this decides and words.
 */

/** The kinds of things that can keep an entity in use, with their singular and plural names. */
export const UserKind = {
  machine: ["machine", "machines"],
  allocatedMachine: ["allocated machine", "allocated machines"],
  sizeReservation: ["size reservation", "size reservations"],
  sizeImageConstraint: ["size-image constraint", "size-image constraints"],
  switch: ["switch", "switches"],
  network: ["network", "networks"],
} as const satisfies Record<string, readonly [string, string]>;

export type UserKind = (typeof UserKind)[keyof typeof UserKind];

/** Users of one kind: how many, and the first few ids (ordered) to name them. */
export interface Users {
  kind: UserKind;
  count: number;
  sample: readonly string[];
}

/** How many ids of each kind a refusal names; the count says how many more there are. */
export const SAMPLE_SIZE = 3;

const listed = (parts: string[]): string => (parts.length <= 1 ? (parts[0] ?? "") : `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}`);

function describe({ kind, count, sample }: Users): string {
  const ids = sample.slice(0, SAMPLE_SIZE);
  const more = count > ids.length ? ", …" : "";
  const names = ids.length > 0 ? ` (${ids.join(", ")}${more})` : "";
  return `${count} ${count === 1 ? kind[0] : kind[1]}${names}`;
}

/**
 * The refusal of deleting `what` ("size \"s1\"") while anything uses it, in
 * the words the network and switch deletes use ("… is still used by 8
 * machines (a, b, c, …) and 1 size reservation (r); delete them first"), or
 * undefined when nothing does and the delete may go ahead.
 */
export function inUseRefusal(what: string, users: readonly Users[], hint: string): string | undefined {
  const using = users.filter((u) => u.count > 0);
  if (using.length === 0) return undefined;
  return `${what} is still used by ${listed(using.map(describe))}; ${hint}`;
}
