/**
 * /v1/agents: what agents on customer hosts call, without an API token. Enrollment proves the tenant (its enrollment
 * token) and the instance (its EC2 identity document signed by AWS) and answers the agent's own credential, once;
 * heartbeats authenticate with that credential alone.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../services";
import { HEARTBEAT_INTERVAL_SECONDS } from "../../services/rollout/enrollment";
import { presentAgent } from "../presenters";
import { json } from "../openapi-route-parts";
import { createRouter } from "../router";
import { bodyErrorResponses, errorSchema, rateLimitedResponse } from "../schemas";

const enrollmentToken = z.string().min(16, "must be the tenant's enrollment token").max(256);
/** What enrollment issued: `mxdr-agent_` and 43 base64url characters. */
const agentCredential = z.string().regex(/^mxdr-agent_[A-Za-z0-9_-]{43}$/, "must be the agent credential enrollment answered (mxdr-agent_...)");
/** An EC2 instance id, as the identity document names it. */
const instanceId = z.string().regex(/^i-[A-Za-z0-9-]{1,60}$/, "must be the EC2 instance id such as i-0123456789abcdef0");
const agentVersion = z.string().regex(/^[0-9]+\.[0-9]+\.[0-9]+([-+][A-Za-z0-9_.]+)?$/, "must be a semantic version such as 1.4.2");

const enrollSchema = z
  .strictObject({
    enrollment_token: enrollmentToken,
    identity_document: z
      .string()
      .min(2, "must be the instance identity document from instance metadata")
      .max(8192)
      .openapi({ description: "/latest/dynamic/instance-identity/document from instance metadata, byte for byte (the signature covers it)" }),
    identity_signature: z
      .string()
      .regex(/^[A-Za-z0-9+/=\r\n]{16,4096}$/, "must be the base64 signature from /latest/dynamic/instance-identity/signature")
      .openapi({ description: "/latest/dynamic/instance-identity/signature: base64 RSA SHA-256 of the document by AWS's key for the region" }),
    hostname: z.string().regex(/^[A-Za-z0-9._-]{1,253}$/, "must be a host name (letters, digits, dots, dashes)"),
    agent_version: agentVersion,
    agent_credential: agentCredential
      .optional()
      .openapi({ description: "the instance's current agent credential: required to enroll an instance whose agent already holds one" }),
  })
  .openapi("AgentEnrollment");

const heartbeatSchema = z
  .strictObject({ agent_credential: agentCredential, instance_id: instanceId, agent_version: agentVersion.optional() })
  .openapi("AgentHeartbeat");

const agentSchema = z
  .object({
    agent_id: z.number(),
    instance_id: z.string(),
    hostname: z.string().nullable(),
    agent_version: z.string().nullable(),
    enrolled_at: z.string(),
    last_heartbeat_at: z.string().nullable(),
    heartbeat_interval_seconds: z.number(),
  })
  .openapi("Agent");

const enrolledSchema = agentSchema
  .extend({
    agent_credential: agentCredential.openapi({
      description: "the agent's own credential for heartbeats and re-enrollment; shown this once, only its hash is kept",
    }),
  })
  .openapi("AgentEnrolled");

const invalid = json(errorSchema, "invalid input (fields names each bad field)");
const tooManyFailures = rateLimitedResponse("too many failed enrollment-token authentications from this address (code too_many_auth_failures)");

export function agentsRouter({ rollout }: Pick<Services, "rollout">) {
  const router = createRouter();

  router.openapi(
    createRoute({
      method: "post",
      path: "/enroll",
      tags: ["agents"],
      summary: "Enroll an agent: the tenant's enrollment token and the instance's EC2 identity document signed by AWS",
      request: { body: { content: { "application/json": { schema: enrollSchema } }, required: true } },
      responses: {
        201: json(enrolledSchema, "enrolled: the answer carries the agent's credential"),
        200: json(enrolledSchema, "re-enrolled with the instance's credential (or after an operator's reset): a new credential"),
        400: invalid,
        401: json(errorSchema, "unknown or revoked enrollment token, or an identity document whose signature does not verify (nothing was changed)"),
        403: json(
          errorSchema,
          "the instance is not the tenant's (another account or region; code instance_not_of_tenant), or agent_credential is not the instance's (code agent_credential_mismatch)",
        ),
        409: json(
          errorSchema,
          "the instance is not a discovered asset of the tenant yet (code instance_not_discovered: retry after discovery), or it is enrolled and agent_credential is missing (code agent_already_enrolled)",
        ),
        413: json(errorSchema, "body too large"),
        ...bodyErrorResponses,
        429: tooManyFailures,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { agent, created, credential } = await rollout.enroll({
        enrollmentToken: body.enrollment_token,
        identityDocument: body.identity_document,
        identitySignature: body.identity_signature,
        hostname: body.hostname,
        agentVersion: body.agent_version,
        agentCredential: body.agent_credential,
      });
      return c.json({ ...presentAgent(agent, HEARTBEAT_INTERVAL_SECONDS), agent_credential: credential }, created ? 201 : 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/heartbeat",
      tags: ["agents"],
      summary: "An enrolled agent reports that it is alive, with its own credential",
      request: { body: { content: { "application/json": { schema: heartbeatSchema } }, required: true } },
      responses: {
        200: json(agentSchema, "recorded"),
        400: invalid,
        401: json(errorSchema, "not the credential of this instance's agent (unknown, reset, or another instance's): nothing was changed"),
        413: json(errorSchema, "body too large"),
        ...bodyErrorResponses,
        429: tooManyFailures,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const agent = await rollout.heartbeat({
        agentCredential: body.agent_credential,
        instanceId: body.instance_id,
        agentVersion: body.agent_version,
      });
      return c.json(presentAgent(agent, HEARTBEAT_INTERVAL_SECONDS), 200);
    },
  );

  return router;
}
