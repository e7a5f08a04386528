/** Who the identity provider says signed in, as the service keeps it. */
export interface ProviderIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  name: string | null;
  /** Whether the operator claim carries one of the operator values. */
  operator: boolean;
}

/** What a sign-in through the identity provider keeps in the browser (an HttpOnly cookie) until its callback. */
export interface PendingSignIn {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** The invitation the sign-in accepts, if it started from one. */
  invitation?: string;
}

/** Whether `claim` (a string or a list of them) holds one of `values` (pure). */
export function claimGrants(claim: unknown, values: readonly string[]): boolean {
  if (values.length === 0) return false;
  const held = Array.isArray(claim) ? claim : [claim];
  return held.some((value) => typeof value === "string" && values.includes(value));
}
