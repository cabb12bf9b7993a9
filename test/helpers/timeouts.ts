/**
 * Every timeout of the suite comes from here, scaled by one setting:
 * METAL_TEST_TIME_SCALE (default 1). A slow or shared machine (CI, a benchmark
 * running beside the tests) sets it higher, e.g. 2 or 3, and every wait,
 * test and hook timeout grows by that factor. The base values below are
 * generous on purpose: they bound how long a broken test takes to fail, they
 * never decide whether a working test passes.
 */
export const TIME_SCALE = parseScale(process.env.METAL_TEST_TIME_SCALE);

function parseScale(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === "") return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`METAL_TEST_TIME_SCALE must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

/** `ms` scaled by METAL_TEST_TIME_SCALE: the only way a test states a timeout. */
export function scaled(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}

/** How long `eventually` polls by default before it gives up. */
export const WAIT_MS = scaled(20_000);
/** vitest's testTimeout: a test that states no timeout of its own. */
export const TEST_TIMEOUT_MS = scaled(60_000);
/** vitest's hookTimeout: beforeAll/afterAll (servers, labs, databases). */
export const HOOK_TIMEOUT_MS = scaled(120_000);
