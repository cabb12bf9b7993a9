import { safeError } from "../../client/log-redaction.js";
import { listen } from "../http/listener.js";
import { createLogger } from "../logger.js";
import { ConfigError, describeSettings, loadMasterdataConfig, type MasterdataConfig } from "./config.js";
import { createMasterdataServer } from "./server.js";

/** masterdata-api's only place that starts things: config, logger, server, listener, signals. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`masterdata-api: tenants, projects and their members (masterdata.v1) as a service of its own\n\nFlags (each also an environment variable):\n${describeSettings()}\n`);
    return;
  }
  let config: MasterdataConfig;
  try {
    config = loadMasterdataConfig(process.env, argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`masterdata-api: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const server = await createMasterdataServer(config, log);
  const tls = config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined;
  const listener = await listen(server.handler, config.listen, tls, config.connections);
  log.info(
    { url: listener.url, database: server.databaseKind === "postgres" ? "postgres" : "embedded", dataDir: server.databaseKind === "pglite" ? config.dataDir : undefined },
    `masterdata-api listening on ${listener.url}`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    server.endStreams();
    await listener.close();
    await server.close();
    log.info("stopped");
    log.flush();
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // Through the log rules: the stack of a failed query would carry its parameters.
  process.stderr.write(`masterdata-api: ${JSON.stringify(safeError(err))}\n`);
  process.exit(1);
});
