import { createApp } from "./app.js";
import { ensureAdminToken } from "./auth/admin-token.js";
import { ConfigError, describeSettings, loadConfig, type Config } from "./config.js";
import { listen } from "./http/listener.js";
import { createLogger } from "./logger.js";

/** The only place that starts things: config, logger, app, listener, signals. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`metal-api: the metal control plane\n\nFlags (each also an environment variable):\n${describeSettings()}\n`);
    return;
  }
  let config: Config;
  try {
    config = loadConfig(process.env, argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`metal-api: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const app = await createApp(config, log);
  const admin = await ensureAdminToken(app.db, app.authority, config.dataDir);
  if (admin.created) {
    // Printed once, on creation; afterwards it is only in the file.
    log.info({ path: admin.path }, "created the operator admin token");
    process.stdout.write(`\nadmin token (also in ${admin.path}):\n${admin.token}\n\n`);
  }
  const tls = config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined;
  const listener = await listen(app.handler, config.listen, tls, config.connections);
  log.info(
    { url: listener.url, database: config.databaseUrl ? "postgres" : "embedded", dataDir: config.dataDir },
    `metal-api listening on ${listener.url}`,
  );

  const consoleServer = await app.startConsole();
  log.info({ host: consoleServer.host, port: consoleServer.port, hostKey: consoleServer.hostKey }, `metal-console (SSH) listening on ${consoleServer.host}:${consoleServer.port}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    app.endStreams();
    await consoleServer.close();
    await listener.close();
    await app.close();
    log.info("stopped");
    log.flush();
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`metal-api: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
