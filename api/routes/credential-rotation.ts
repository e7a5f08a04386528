/**
 * /v1/credentials/rotation (platform admin): the credentials key rotation. GET: the key rows are re-sealed to and how
 * many rows each table still holds under older keys; POST: re-seal everything to this replica's current key now (in
 * the background, services/integration/credential-rotation-queue.ts). A replica re-seals by itself when it starts
 * with a new key; POST is for starting a pass at once, or for going back to a key that was current before.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { KEY_ID_PATTERN } from "../../db/crypto";
import type { Services } from "../../services";
import { SEALED_SOURCES } from "../../services/integration/credential-rotation";
import { presentCredentialRotation } from "../credential-rotation-presenter";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { bodyErrorResponses, errorResponse, errorResponses, postErrorResponses } from "../schemas";

const keyIdSchema = z.string().regex(KEY_ID_PATTERN, "must be a key id (1-64 letters, digits, _ or -) as GET answers it");

export const startRotationSchema = z
  .strictObject({
    key_id: keyIdSchema
      .optional()
      .openapi({ description: "the key this replica should seal with (`current_key_id`); a replica on another key answers 409" }),
  })
  .openapi("StartCredentialRotation");

const countsSchema = z.object(
  Object.fromEntries(SEALED_SOURCES.map((name) => [name, z.number()])) as Record<(typeof SEALED_SOURCES)[number], z.ZodNumber>,
);

const rotationSchema = z
  .object({
    current_key_id: z.string().openapi({ description: "the key the replica that answered seals new values with" }),
    target_key_id: z.string().nullable().openapi({ description: "the key every sealed row is re-sealed to" }),
    requested_by: z.string().nullable().openapi({ description: "system:startup (a replica started with the key) or the admin token's actor" }),
    requested_at: z.string().nullable(),
    completed_at: z.string().nullable().openapi({ description: "when a pass found nothing left to re-seal; null while rotating" }),
    rows_resealed: z.number(),
    state: z.enum(["rotating", "complete"]).openapi({ description: "complete: no row is sealed under another key than the target" }),
    remaining_total: z.number(),
    remaining: countsSchema.openapi({ description: "rows still under another key than the target, per table" }),
    remaining_by_key: z.array(
      z.object({
        key_id: z.string(),
        rows: z.number(),
        readable_here: z
          .boolean()
          .openapi({ description: "the answering replica holds this key (false: configure it, e.g. in CREDENTIALS_PREVIOUS_ENCRYPTION_KEYS)" }),
      }),
    ),
  })
  .openapi("CredentialRotation");

const getRoute = createRoute({
  method: "get",
  path: "/credentials/rotation",
  operationId: "getCredentialRotation",
  tags: ["credentials"],
  summary: "The credentials key rotation: the target key and the rows still sealed under older keys (platform admin)",
  security,
  responses: { 200: json(rotationSchema, "the rotation"), ...errorResponses },
});

const startRoute = createRoute({
  method: "post",
  path: "/credentials/rotation",
  operationId: "startCredentialRotation",
  tags: ["credentials"],
  summary: "Re-seal every sealed row to this replica's current key, in the background (platform admin)",
  security,
  request: { body: { content: { "application/json": { schema: startRotationSchema } }, required: true } },
  responses: {
    202: json(rotationSchema, "a pass is queued"),
    ...errorResponses,
    ...bodyErrorResponses,
    ...postErrorResponses,
    503: errorResponse("the rotation does not run in this process"),
  },
});

export function credentialRotationRouter({ credentialRotation }: Pick<Services, "credentialRotation">) {
  const router = createRouter();
  router.openapi(getRoute, async (c) => c.json(presentCredentialRotation(await credentialRotation.status(c.get("principal"))), 200));
  router.openapi(startRoute, async (c) =>
    c.json(presentCredentialRotation(await credentialRotation.start(c.get("principal"), { keyId: c.req.valid("json").key_id })), 202),
  );
  return router;
}
