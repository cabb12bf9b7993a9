import { safeError } from "../client/log-redaction.js";
import { createApp } from "./app.js";
import { ensureAdminToken } from "./auth/admin-token.js";
import { restoreOnStartIfAsked } from "./backup/on-start.js";
import { type Config, ConfigError, describeSettings, loadConfig } from "./config.js";
import { fingerprint } from "./console/access.js";
import { listen } from "./http/listener.js";
import { createLogger } from "./logger.js";

/** Not a setting but an action: revoke the bootstrap admin token(s) and issue a new one. */
const RESET_ADMIN_TOKEN = "--reset-admin-token";

/** The only place that starts things: config, logger, app, listener, signals. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(
      `metal-api: the metal control plane\n\nFlags (each also an environment variable):\n${describeSettings()}\n\n` +
        `  ${RESET_ADMIN_TOKEN}  revoke the bootstrap operator admin token and write a new one to $METAL_DATA_DIR/admin-token\n`,
    );
    return;
  }
  let config: Config;
  try {
    config = loadConfig(
      process.env,
      argv.filter((a) => a !== RESET_ADMIN_TOKEN),
    );
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`metal-api: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  // METAL_RESTORE_ON_START: the newest good backup into empty databases, before they are opened (docs/backup.md).
  await restoreOnStartIfAsked(config, process.env, log);
  const app = await createApp(config, log);
  const admin = await ensureAdminToken(app.db, app.authority, config.dataDir, { reset: argv.includes(RESET_ADMIN_TOKEN) });
  // The token itself is never printed: terminals, CI logs and log shippers keep what they are shown.
  if (admin.created) log.info({ path: admin.path }, `operator admin token written to ${admin.path} (mode 0600)`);
  if (admin.problem) log.warn({ path: admin.path }, admin.problem);
  const tls = config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined;
  const listener = await listen(app.handler, config.listen, tls, config.connections);
  // Listening on port 0 (tests, labs): the other replicas must dial the port actually taken.
  if (config.internalAddress.endsWith(":0")) await app.replica.setAddress(new URL(listener.url).host);
  log.info({ url: listener.url, database: config.databaseUrl ? "postgres" : "embedded", dataDir: config.dataDir }, `metal-api listening on ${listener.url}`);

  const consoleServer = await app.startConsole();
  const hostKeyFingerprint = fingerprint(consoleServer.hostKey.split(" ")[1] ?? "");
  log.info(
    { host: consoleServer.host, port: consoleServer.port, hostKey: consoleServer.hostKey, fingerprint: hostKeyFingerprint },
    `metal-console (SSH) listening on ${consoleServer.host}:${consoleServer.port}, host key ${hostKeyFingerprint}`,
  );

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
  // Through the log rules: the stack of a failed query would carry its parameters.
  process.stderr.write(`metal-api: ${JSON.stringify(safeError(err))}\n`);
  process.exit(1);
});
