/**
 * /v1/agents: what agents on customer hosts call. They authenticate with their tenant's enrollment token (in the
 * body, as the install script sends it), not with an API token.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../services";
import { HEARTBEAT_INTERVAL_SECONDS } from "../../services/rollout/enrollment";
import { presentAgent } from "../presenters";
import { createRouter } from "../router";
import { errorSchema } from "../schemas";

const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const enrollmentToken = z.string().min(16, "must be the tenant's enrollment token").max(256);
/** EC2 (i-...), SSM hybrid (mi-...) or another stable host id; no spaces or control characters. */
const instanceId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "must be the host's instance id such as i-0123456789abcdef0");
const agentVersion = z.string().regex(/^[0-9]+\.[0-9]+\.[0-9]+([-+][A-Za-z0-9_.]+)?$/, "must be a semantic version such as 1.4.2");

const enrollSchema = z
  .strictObject({
    enrollment_token: enrollmentToken,
    instance_id: instanceId,
    hostname: z.string().regex(/^[A-Za-z0-9._-]{1,253}$/, "must be a host name (letters, digits, dots, dashes)"),
    agent_version: agentVersion,
  })
  .openapi("AgentEnrollment");

const heartbeatSchema = z
  .strictObject({ enrollment_token: enrollmentToken, instance_id: instanceId, agent_version: agentVersion.optional() })
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

const unauthorized = json(errorSchema, "unknown or revoked enrollment token (nothing was changed)");
const invalid = json(errorSchema, "invalid input (fields names each bad field)");

export function agentsRouter({ rollout }: Pick<Services, "rollout">) {
  const router = createRouter();

  router.openapi(
    createRoute({
      method: "post",
      path: "/enroll",
      tags: ["agents"],
      summary: "Enroll an agent with its tenant's enrollment token",
      request: { body: { content: { "application/json": { schema: enrollSchema } }, required: true } },
      responses: {
        201: json(agentSchema, "enrolled"),
        200: json(agentSchema, "already enrolled: the record was refreshed"),
        400: invalid,
        401: unauthorized,
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { agent, created } = await rollout.enroll({
        enrollmentToken: body.enrollment_token,
        instanceId: body.instance_id,
        hostname: body.hostname,
        agentVersion: body.agent_version,
      });
      return c.json(presentAgent(agent, HEARTBEAT_INTERVAL_SECONDS), created ? 201 : 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/heartbeat",
      tags: ["agents"],
      summary: "An enrolled agent reports that it is alive",
      request: { body: { content: { "application/json": { schema: heartbeatSchema } }, required: true } },
      responses: {
        200: json(agentSchema, "recorded"),
        400: invalid,
        401: unauthorized,
        404: json(errorSchema, "this instance has not enrolled"),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const agent = await rollout.heartbeat({
        enrollmentToken: body.enrollment_token,
        instanceId: body.instance_id,
        agentVersion: body.agent_version,
      });
      return c.json(presentAgent(agent, HEARTBEAT_INTERVAL_SECONDS), 200);
    },
  );

  return router;
}
