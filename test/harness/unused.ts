/** A dependency the code under test must never touch: any use fails the test loudly, naming what was used. */
export function unused<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get: (_target, property) => {
      if (property === "then") return undefined;
      throw new Error(`${name}.${String(property)} is not part of this test`);
    },
  });
}

/**
 * The executor's deps of a run queue that only enqueues (work: false): it reads the run timeouts (a job expires after
 * its run's timeout and the stop grace), and nothing else may be touched.
 */
export function enqueueOnlyExecutorDeps<T extends object>(): T {
  return Object.assign(Object.create(unused<T>("executor deps")) as T, { timeoutSeconds: undefined, stopGraceSeconds: undefined });
}
