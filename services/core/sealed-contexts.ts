/**
 * Encryption contexts of sealed values that their owner and key rotation (services/integration/credential-rotation.ts)
 * both need: a value sealed under one context does not open under another.
 */
import type { CredentialContext } from "../../db/crypto";

/** The sealed webhook secret is bound to its owner: a platform-wide webhook's to "platform". */
export function webhookSecretContext(organizationId: number | null): CredentialContext {
  return { organizationId: organizationId ?? "platform", provider: "webhook" };
}

/** Sealed per tenant and plan id: a plan copied to another tenant's or plan's row does not open. */
export const planContext = (organizationId: number, planId: string) => ({ organizationId, provider: `run-plan:${planId}` });
