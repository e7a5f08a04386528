/** After the grace period: how long a cancelled pulumi CLI gets to finish its in-flight resource operations. */
export const SHUTDOWN_CANCEL_WINDOW_SECONDS = 30;

/**
 * When a stopping service exits whatever is left (api/server.ts): the grace for running stack operations, the cancel
 * window, and a margin for closing the database. A supervisor must wait longer before it kills the process.
 */
export const shutdownDeadlineSeconds = (graceSeconds: number) => graceSeconds + SHUTDOWN_CANCEL_WINDOW_SECONDS + 30;
