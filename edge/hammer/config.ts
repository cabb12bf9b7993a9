import { describeSettings, readSettings, type SettingsReader } from "../../client/settings.js";
import type { HammerTiming } from "./hammer.js";

/** What metal-hammer needs on any hardware: each an environment variable and the matching `--flag`. */
export interface HammerConfig {
  apiUrl: string;
  token: string;
  partition: string;
  timing: Partial<HammerTiming>;
}

export const HAMMER_SETTINGS = {
  apiUrl: { env: "METAL_API_URL", flag: "api-url", fallback: "http://127.0.0.1:8080" },
  token: { env: "METAL_HAMMER_TOKEN", flag: "token" },
  partition: { env: "METAL_HAMMER_PARTITION_ID", flag: "partition" },
  aliveSeconds: { env: "METAL_HAMMER_ALIVE_INTERVAL", flag: "alive-interval", fallback: "60" },
  crashRebootSeconds: { env: "METAL_HAMMER_CRASH_REBOOT_DELAY", flag: "crash-reboot-delay", fallback: "5" },
} as const;

export const describeHammerSettings = (): string => describeSettings(HAMMER_SETTINGS);

/** The common settings from a reader that may know more (the simulated hammer adds its machine's). */
export function hammerConfigFrom(r: SettingsReader<keyof typeof HAMMER_SETTINGS>): HammerConfig {
  return {
    apiUrl: r.url("apiUrl", ["http:", "https:"]),
    token: r.get("token"),
    partition: r.get("partition"),
    timing: { aliveMs: r.seconds("aliveSeconds"), crashRebootMs: r.seconds("crashRebootSeconds") },
  };
}

/** Flags win over the environment; throws with a message fit for the user on anything missing or malformed. */
export function loadHammerConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): HammerConfig {
  return hammerConfigFrom(readSettings(HAMMER_SETTINGS, env, argv));
}
