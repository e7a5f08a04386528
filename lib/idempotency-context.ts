/** What an Idempotency-Key's stored answer (api/idempotency.ts) is sealed to: the actor and the key. Key rotation re-seals it too. */
export function idempotencyResponseContext(actor: string, key: string) {
  return { organizationId: "idempotency", provider: `${actor}|${key}` };
}
