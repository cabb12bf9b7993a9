import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { inTransaction } from "../../server/db/database.js";
import type { DbHandle } from "../../server/db/handle.js";
import { filesystemLayouts, images, machines, partitions, type StoredAllocation, sizes } from "../../server/db/schema/index.js";
import { machineAllocationRepository as allocations } from "../../server/repositories/machine-repository.js";
import { partitionRepository } from "../../server/repositories/partition-repository.js";
import { referenceHolds } from "../../server/repositories/usage-repository.js";
import { createAdminFilesystemLayoutService } from "../../server/services/admin/filesystem-layout-service.js";
import { createAdminImageService } from "../../server/services/admin/image-service.js";
import { createAdminPartitionService } from "../../server/services/admin/partition-service.js";
import { expectCode } from "../helpers/expect.js";
import { openTransaction, someoneWaitsForALock } from "../helpers/interleave.js";
import { useMetalDatabase } from "../helpers/metal-db.js";

/**
 * A delete and a writer that makes something use the same row, interleaved
 * on real PostgreSQL (PGlite has one connection, so nothing interleaves
 * there): whichever locks first wins, and the other sees its result.
 */
let db: DbHandle;
const service = () => createAdminPartitionService({ db });
const deletePartition = async (id: string) => service().delete({ id } as never, {} as never);

beforeAll(async () => {
  ({ db } = await useMetalDatabase());
});

describe("a delete racing a writer that adds a user", () => {
  it("waits for a writer holding the row, then counts what it wrote and refuses", async () => {
    await db.insert(partitions).values({ id: "race-1" });
    const writer = openTransaction(db, async (tx) => {
      await referenceHolds.partition(tx, "race-1");
      await tx.insert(machines).values({ id: "00000000-0000-4000-8000-000000000001", partitionId: "race-1" });
    });
    await writer.started;
    // The expectation is attached at once: the refusal may come before the writer's commit is awaited.
    const refused = expectCode(deletePartition("race-1"), Code.FailedPrecondition, 'partition "race-1" is still used by 1 machine (00000000-0000-4000-8000-000000000001); delete them first');
    await someoneWaitsForALock(db);
    writer.commit();
    await writer.done;
    await refused;
    expect(await partitionRepository.get(db, "race-1")).toMatchObject({ id: "race-1" });
  });

  it("lets a writer that comes after the delete's lock find nothing (NotFound), never a dangling reference", async () => {
    await db.insert(partitions).values({ id: "race-2" });
    const deleter = openTransaction(db, async (tx) => {
      await partitionRepository.lock(tx, "race-2");
      await partitionRepository.delete(tx, "race-2");
    });
    await deleter.started;
    const writing = inTransaction(db, async (tx) => {
      await referenceHolds.partition(tx, "race-2");
      await tx.insert(machines).values({ id: "00000000-0000-4000-8000-000000000002", partitionId: "race-2" });
    });
    // Attached at once: the writer may be refused before the deleter's commit is awaited.
    const refused = expectCode(writing, Code.NotFound, 'partition "race-2" not found');
    await someoneWaitsForALock(db);
    deleter.commit();
    await deleter.done;
    await refused;
    expect(await db.select().from(machines).where(sql`${machines.partitionId} = 'race-2'`)).toEqual([]);
  });

  it("does not make writers wait for each other", async () => {
    await db.insert(partitions).values({ id: "race-3" });
    const first = openTransaction(db, (tx) => referenceHolds.partition(tx, "race-3"));
    await first.started;
    // A second holder gets the row while the first still holds it.
    await inTransaction(db, (tx) => referenceHolds.partition(tx, "race-3"));
    first.commit();
    await first.done;
  });
});

describe("what an allocation holds", () => {
  const refs = { partition: "alloc-p", size: "alloc-s", image: "alloc-1.0.0", filesystemLayout: "alloc-l" };

  beforeAll(async () => {
    await db.insert(partitions).values({ id: refs.partition });
    await db.insert(sizes).values({ id: refs.size, constraints: [] });
    await db
      .insert(images)
      .values({ id: refs.image, url: "http://images.example/a", features: [1], os: "alloc", osVersion: "1.0.0", versionKey: "1.0.0", classification: 1, expiresAt: new Date(Date.now() + 86_400_000) });
    await db.insert(filesystemLayouts).values({ id: refs.filesystemLayout, spec: {} as never });
  });

  it("answers NotFound naming the first reference that is gone", async () => {
    await inTransaction(db, (tx) => referenceHolds.allocation(tx, refs));
    await expectCode(
      inTransaction(db, (tx) => referenceHolds.allocation(tx, { ...refs, image: "gone-1.0.0" })),
      Code.NotFound,
      'image "gone-1.0.0" not found',
    );
    await expectCode(
      inTransaction(db, (tx) => referenceHolds.allocation(tx, { ...refs, filesystemLayout: "gone" })),
      Code.NotFound,
      'filesystem layout "gone" not found',
    );
  });

  it("keeps an image delete waiting until the allocation commits, which it then counts", async () => {
    const id = "00000000-0000-4000-8000-000000000003";
    const allocation = { image: refs.image, filesystemLayout: refs.filesystemLayout, project: "p" } as StoredAllocation;
    const allocating = openTransaction(db, async (tx) => {
      await referenceHolds.allocation(tx, refs);
      await tx.insert(machines).values({ id, partitionId: refs.partition, sizeId: refs.size, allocation, project: "p" });
    });
    await allocating.started;
    const deleting = (async () => createAdminImageService({ db }).delete({ id: refs.image } as never, {} as never))();
    // The expectation is attached at once: the refusal may come before the allocation's commit is awaited.
    const refused = expectCode(deleting, Code.FailedPrecondition, `image "${refs.image}" is still used by 1 allocated machine (${id}); free or reinstall them first`);
    await someoneWaitsForALock(db);
    allocating.commit();
    await allocating.done;
    await refused;
  });

  it("holds them in the statement that locks the candidate machine: a layout delete waits for that allocation, then counts it", async () => {
    const id = "00000000-0000-4000-8000-000000000004";
    await db.execute(sql`insert into machines (id, partition_id, size_id, rack_id, waiting_until) values (${id}, ${refs.partition}, ${refs.size}, 'r1', now() + interval '1 hour')`);
    await db.execute(sql`insert into machine_events (machine_id, liveliness, events) values (${id}, 'Alive', '[]'::jsonb)`);
    const allocation = { image: refs.image, filesystemLayout: refs.filesystemLayout, project: "p" } as StoredAllocation;
    const allocating = openTransaction(db, async (tx) => {
      expect((await allocations.lockCandidate(tx, refs, { id }))?.machine.id).toBe(id);
      await tx.update(machines).set({ allocation, project: "p" }).where(sql`${machines.id} = ${id}`);
    });
    await allocating.started;
    const refused = expectCode(
      (async () => createAdminFilesystemLayoutService({ db }).delete({ id: refs.filesystemLayout } as never, {} as never))(),
      Code.FailedPrecondition,
      `filesystem layout "${refs.filesystemLayout}" is still used by 2 allocated machines`,
    );
    await someoneWaitsForALock(db);
    allocating.commit();
    await allocating.done;
    await refused;
  });

  it("finds no candidate once a reference is gone", async () => {
    const id = "00000000-0000-4000-8000-000000000005";
    await db.execute(sql`insert into machines (id, partition_id, size_id, rack_id, waiting_until) values (${id}, ${refs.partition}, ${refs.size}, 'r1', now() + interval '1 hour')`);
    await db.execute(sql`insert into machine_events (machine_id, liveliness, events) values (${id}, 'Alive', '[]'::jsonb)`);
    await inTransaction(db, async (tx) => expect((await allocations.lockCandidate(tx, refs, { id }))?.machine.id).toBe(id));
    await inTransaction(db, async (tx) => expect(await allocations.lockCandidate(tx, { ...refs, image: "gone-1.0.0" }, { id })).toBeUndefined());
  });
});
