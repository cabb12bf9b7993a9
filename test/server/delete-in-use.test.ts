import { describeDeletesInUse } from "../helpers/delete-in-use-table.js";
import { launchServer } from "../helpers/server-launch.js";

// The table of issue 13 on PostgreSQL; delete-in-use-pglite.test.ts runs it on the embedded database.
describeDeletesInUse("PostgreSQL", () => launchServer());
