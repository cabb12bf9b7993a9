/**
 * Serves many concurrent requests with one call of `run` for all of them,
 * single-flight: while a batch runs, new requests queue for the next one, so
 * under load batches grow by themselves and without load a request is served
 * at once (no timer). A request never joins a batch that is already running:
 * whatever the caller committed before asking is visible to the batch that
 * serves it.
 *
 * `run` answers each request in the order given (an array of the same
 * length); if it throws, every request of that batch fails with its error.
 */
export function singleFlightBatches<Q, A>(run: (requests: readonly Q[]) => Promise<readonly A[]>): (request: Q) => Promise<A> {
  type Waiting = { request: Q; resolve: (a: A) => void; reject: (err: unknown) => void };
  let queued: Waiting[] = [];
  let running = false;

  async function drain(): Promise<void> {
    running = true;
    try {
      while (queued.length > 0) {
        const batch = queued;
        queued = [];
        try {
          const answers = await run(batch.map((w) => w.request));
          batch.forEach((w, i) => w.resolve(answers[i] as A));
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      running = false;
    }
  }

  return (request) =>
    new Promise<A>((resolve, reject) => {
      queued.push({ request, resolve, reject });
      if (!running) void drain();
    });
}
