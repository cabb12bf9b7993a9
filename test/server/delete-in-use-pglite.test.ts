import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, it } from "vitest";
import { type Database, inTransaction } from "../../server/db/database.js";
import { type MetalSchema, openMetalDatabase } from "../../server/db/metal-database.js";
import { filesystemLayouts, images, partitions, sizes } from "../../server/db/schema/index.js";
import { referenceHolds } from "../../server/repositories/usage-repository.js";
import { describeDeletesInUse, launchEmbeddedServer } from "../helpers/delete-in-use-table.js";
import { expectCode } from "../helpers/expect.js";
import { scaled } from "../helpers/timeouts.js";

// The table of issue 13 on embedded PGlite, the database `npm start` uses.
describeDeletesInUse("PGlite", launchEmbeddedServer);

describe("reference holds on PGlite", () => {
  let database: Database<MetalSchema>;
  const refs = { partition: "p", size: "s", image: "os-1.0.0", filesystemLayout: "l" };

  beforeAll(async () => {
    database = await openMetalDatabase({ url: undefined, dataDir: undefined });
    const db = database.db;
    await db.insert(partitions).values({ id: refs.partition });
    await db.insert(sizes).values({ id: refs.size, constraints: [] });
    await db
      .insert(images)
      .values({ id: refs.image, url: "http://images.example/a", features: [1], os: "os", osVersion: "1.0.0", versionKey: "1.0.0", classification: 1, expiresAt: new Date(Date.now() + 86_400_000) });
    await db.insert(filesystemLayouts).values({ id: refs.filesystemLayout, spec: {} as never });
  }, scaled(120_000));

  afterAll(() => database?.close());

  it("holds what an allocation refers to in one statement, and names the first that is gone", async () => {
    await inTransaction(database.db, (tx) => referenceHolds.allocation(tx, refs));
    await expectCode(
      inTransaction(database.db, (tx) => referenceHolds.allocation(tx, { ...refs, size: "gone" })),
      Code.NotFound,
      'size "gone" not found',
    );
  });
});
