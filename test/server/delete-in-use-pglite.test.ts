import { describeDeletesInUse, launchEmbeddedServer } from "../helpers/delete-in-use-table.js";

// The table of issue 13 on embedded PGlite, the database `npm start` uses.
describeDeletesInUse("PGlite", launchEmbeddedServer);
