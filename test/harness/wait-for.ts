/** Polling until something is true, with a deadline whose error names what was awaited. */

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** A probe that throws is asked again until the deadline (whose error names the last failure); without it, the first throw ends the wait. */
  retryErrors?: boolean;
}

/** Polls `probe` until it answers something other than undefined or false; throws after timeoutMs. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  { timeoutMs = 180_000, intervalMs = 250, retryErrors = false }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      if (!retryErrors) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** waitFor with a file's own defaults (a call's options still win). */
export function waitForWith(defaults: WaitOptions) {
  return <T>(what: string, probe: () => Promise<T | undefined | false>, options: WaitOptions = {}): Promise<T> =>
    waitFor(what, probe, { ...defaults, ...options });
}
