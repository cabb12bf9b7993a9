/** What metal-bmc reports about one BMC. */
export interface BmcReport {
  address: string;
  mac: string;
  user: string;
  password: string;
  interface: string;
  version: string;
  powerState: string;
  fru: Record<string, string>;
}

export interface BmcState extends BmcReport {
  lastUpdated: string;
}

/**
 * The BMC data after a report: the report wins field by field, but an empty
 * field does not erase what is known (a BMC that fails to answer one query
 * should not lose its MAC), and FRU keys are merged, as in the original where
 * only the FRU fields present overwrite.
 */
export function mergeBmcReport(stored: BmcState | null, report: BmcReport, now: Date): BmcState {
  const keep = (key: Exclude<keyof BmcReport, "fru">): string => report[key] || stored?.[key] || "";
  const fru = { ...(stored?.fru ?? {}) };
  for (const [k, v] of Object.entries(report.fru)) if (v !== "") fru[k] = v;
  return {
    address: keep("address"),
    mac: keep("mac").toLowerCase(),
    user: keep("user"),
    password: keep("password"),
    interface: keep("interface"),
    version: keep("version"),
    powerState: (report.powerState || stored?.powerState || "UNKNOWN").toUpperCase(),
    fru,
    lastUpdated: now.toISOString(),
  };
}
