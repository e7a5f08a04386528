/**
 * Webhook signatures: `X-MiniXdr-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the
 * webhook's secret. The timestamp is inside what is signed, so a receiver rejects a replay by refusing an old `t`.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "X-MiniXdr-Signature";
/** How old a signature a receiver should still accept (seconds). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signatureOf(secret: string, timestamp: number, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`, "utf8").digest("hex");
}

export function signatureHeader(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${signatureOf(secret, timestamp, body)}`;
}

export type SignatureCheck = { valid: true; timestamp: number } | { valid: false; reason: "malformed" | "mismatch" | "too_old" | "in_future" };

/** What a receiver does: parse the header, recompute the HMAC in constant time, refuse stale timestamps. */
export function verifySignature(
  header: string | null | undefined,
  body: string,
  secret: string,
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): SignatureCheck {
  const parts = Object.fromEntries(
    (header ?? "").split(",").map((part) => {
      const at = part.indexOf("=");
      return at < 0 ? [part.trim(), ""] : [part.slice(0, at).trim(), part.slice(at + 1).trim()];
    }),
  );
  const timestamp = Number(parts.t);
  if (!/^\d+$/.test(parts.t ?? "") || !/^[0-9a-f]{64}$/.test(parts.v1 ?? "")) return { valid: false, reason: "malformed" };
  const expected = Buffer.from(signatureOf(secret, timestamp, body), "hex");
  if (!timingSafeEqual(expected, Buffer.from(parts.v1!, "hex"))) return { valid: false, reason: "mismatch" };
  if (nowSeconds - timestamp > toleranceSeconds) return { valid: false, reason: "too_old" };
  if (timestamp - nowSeconds > toleranceSeconds) return { valid: false, reason: "in_future" };
  return { valid: true, timestamp };
}

/** Delay before attempt `attempt + 1` after `attempt` failed: 1 s, 2 s, 4 s, ... at most maxSeconds. */
export function retryDelaySeconds(attempt: number, baseSeconds = 1, maxSeconds = 60): number {
  return Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempt - 1));
}
