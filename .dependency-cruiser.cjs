// The layering rules of DESIGN.md §2 as checks: `npx depcruise server edge cli client gen test`
// fails when one is broken (.ci/run runs it; test/contracts/layering.test.ts proves each rule bites).
//
// Paths are matched relative to the folder depcruise runs in (the repository root), so a rule
// says `^server/domain/`, not a path with a prefix.

/** The data layer: the only code that builds SQL and so the only code that sees tables. */
const DATA_LAYER = [
  "^server/db/",
  "^server/repositories/",
  "^server/masterdata/db/",
  "^server/masterdata/repositories/",
  // Opens the masterdata database with its schema (the metal database's twin lives in server/db/).
  "^server/masterdata/database[.]ts$",
];

/** Table definitions. A table object is what a query is built from. */
const SCHEMA = "^server/(masterdata/)?db/schema/";

/** Connect handlers, one file per service. */
const HANDLERS = "^server/(services|masterdata/services)/";

/** Packages that talk to the outside world (network, disk, processes, logs, metrics). */
const IO_PACKAGES = "(^|/)node_modules/(pg|pg-[^/]+|drizzle-orm|drizzle-kit|@electric-sql/pglite|mqtt|ssh2|pino|pino-pretty|prom-client|@connectrpc/connect-node|@oclif/core|esbuild|tsx)/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "edge-cli-not-to-server",
      severity: "error",
      comment: "edge/ and cli/ reach the control plane only through gen/ clients, never by importing server/. " + "The lab (edge/lab/) is the one place that composes server and edge in one process.",
      from: { path: "^(edge|cli)/", pathNot: "^edge/lab/" },
      to: { path: "^server/" },
    },
    {
      name: "server-not-to-edge-cli",
      severity: "error",
      comment: "The control plane never depends on the partition daemons or metalctl.",
      from: { path: "^server/" },
      to: { path: "^(edge|cli)/" },
    },
    {
      name: "code-not-to-test",
      severity: "error",
      comment: "What ships (server, edge, cli, client, bin, gen) never imports the tests or their helpers.",
      from: { path: "^(server|edge|cli|client|bin|gen)/" },
      to: { path: "^test/" },
    },
    {
      name: "client-is-neutral",
      severity: "error",
      comment: "client/ is the kit cli, edge and tests share (and the seed of the typed client package): " + "it depends on gen/ and packages only, so any of them can use it.",
      from: { path: "^client/" },
      to: { path: "^(server|edge|cli)/" },
    },
    {
      name: "gen-is-generated",
      severity: "error",
      comment: "gen/ is buf's output from proto/ and imports nothing hand-written.",
      from: { path: "^gen/" },
      to: { path: "^(server|edge|cli|client)/" },
    },
    {
      name: "domain-imports-only-domain",
      severity: "error",
      comment:
        "server/domain/ holds the pure rules (state machine, allocation choice, size matching, IPAM math, " +
        "switch config). It imports other domain modules and gen/ types, never handlers, use cases, " +
        "sessions, repositories, the database or the HTTP layer.",
      from: { path: "^server/domain/" },
      to: { path: "^(server|edge|cli|client|test)/", pathNot: "^server/domain/" },
    },
    {
      name: "domain-no-io",
      severity: "error",
      comment: "Domain rules are computation only: no Node built-ins (they are I/O or process state; " + "the pure ones like isIPv4 are easily written over strings) and no package that talks to the outside.",
      from: { path: "^server/domain/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "domain-no-io-packages",
      severity: "error",
      comment: "Domain rules are computation only: no database, broker, SSH, logging or metrics package.",
      from: { path: "^server/domain/" },
      to: { path: IO_PACKAGES },
    },
    {
      name: "drizzle-only-in-data-layer",
      severity: "error",
      comment: "Only repositories and the database setup (server/db/, server/masterdata/db/, their repositories/) " + "build SQL, so only they import drizzle-orm. Everything else asks a repository.",
      from: { path: "^(server|edge|cli|client)/", pathNot: DATA_LAYER },
      to: { path: "(^|/)node_modules/drizzle-orm/" },
    },
    {
      name: "database-drivers-only-in-db-setup",
      severity: "error",
      comment: "pg and PGlite are opened in one place (server/db/database.ts); the rest gets a drizzle handle.",
      from: { path: "^(server|edge|cli|client)/", pathNot: DATA_LAYER },
      to: { path: "(^|/)node_modules/(pg|@electric-sql/pglite)/" },
    },
    {
      name: "tables-only-in-data-layer",
      severity: "error",
      comment:
        "Table objects (server/db/schema, server/masterdata/db/schema) are used only where SQL is built. " +
        "Elsewhere a module may name a row's TYPE (`import type`): the conversion layer is where rows and " +
        "proto messages meet (DESIGN §2), and use cases pass rows from repositories to it.",
      from: { path: "^(server|edge|cli|client)/", pathNot: DATA_LAYER },
      to: { path: SCHEMA, dependencyTypesNot: ["type-only"] },
    },
    {
      name: "handlers-not-to-schema",
      severity: "error",
      comment:
        "Handlers (server/services/{api,admin,infra}, server/masterdata/services) never touch tables, not even " +
        "row types: they validate, call use cases or repositories, and convert. A row type a handler needs comes " +
        "from the repository or use case that returns it.",
      from: { path: HANDLERS },
      to: { path: SCHEMA },
    },
    {
      name: "repositories-not-to-upper-layers",
      severity: "error",
      comment: "Repositories sit under everything that calls them: they never import handlers, use cases, " + "daemon sessions, jobs or the HTTP layer.",
      from: { path: "^server/(masterdata/)?repositories/" },
      to: {
        path: "^server/(services|usecases|sessions|streams|jobs|http|interceptors|masterdata/services)/",
      },
    },
    {
      name: "handlers-only-from-composition-root",
      severity: "error",
      comment:
        "Handlers are the top of the server: the composition root (server/*.ts: app, routes; " +
        "server/masterdata/*.ts) registers them and other handlers may share their helpers. Use cases, " +
        "sessions, jobs, repositories and everything else below never import a handler; what two of them " +
        "share moves down into a use case or the conversion layer.",
      from: {
        path: "^server/",
        pathNot: ["^server/[^/]+[.]ts$", "^server/masterdata/[^/]+[.]ts$", HANDLERS],
      },
      to: { path: HANDLERS },
    },
    {
      name: "hammer-not-to-sim",
      severity: "error",
      comment: "edge/hammer/ is what runs on a real machine: it never loads the simulated hardware (edge/sim/). " + "The lab wires the simulator into the hammer, not the other way round.",
      // bin/metal-hammer.js is left out on purpose: it is a launcher whose --simulated mode loads
      // edge/sim/hammer-main.ts by a dynamic import; its default path loads edge/hammer/main.ts only.
      from: { path: "^edge/hammer/" },
      // Reachable, not only direct: a helper module that pulls in the simulator breaks it too.
      to: { path: "^edge/sim/", reachable: true },
    },
    {
      name: "tenant-handlers-use-scoped-repositories",
      severity: "error",
      comment:
        "Tenant handlers read and write machines, IPs and networks only through server/repositories/tenant/, " +
        "whose every method takes the caller's ProjectScope and puts it into its SQL: an unscoped repository " +
        "here is how a forgotten project check becomes a cross-project read. Row types may still be imported. " +
        "The machine handler is the one exception: it reads the events of a machine a scoped use case has just " +
        "returned (after a free the machine is no longer the project's, so a scoped read would not find it).",
      from: { path: "^server/services/api/", pathNot: "^server/services/api/machine-service[.]ts$" },
      to: { path: "^server/repositories/(machine|ip|network)-repository[.]ts$", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "no-circular",
      severity: "error",
      comment: "Import cycles make load order matter and layers blur; break the cycle with a smaller module.",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    // Reads `import type` too (tsPreCompilationDeps), so a handler naming a schema row type is seen.
    tsPreCompilationDeps: true,
    // NodeNext imports say `./x.js` for `./x.ts`: the tsconfig makes them resolve to the sources.
    tsConfig: { fileName: "tsconfig.json" },
    doNotFollow: { path: "(^|/)node_modules/" },
    // Not node_modules here: excluding it would hide the imports of pg or drizzle-orm the rules look for.
    exclude: { path: "(^|/)([.]metal|test/bench/results)/|^server/(masterdata/)?db/migrations/" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".mjs", ".cjs", ".json"],
    },
    skipAnalysisNotInRules: true,
    cache: false,
  },
};
