// The real server for memory benchmarks: started with --expose-gc, it runs a
// full garbage collection on SIGUSR2, so a measurement counts what is live,
// not what V8 has not collected yet.
process.on("SIGUSR2", () => (globalThis as { gc?: () => void }).gc?.());
await import("../../server/main.js");
