/** What many routes' OpenAPI definitions repeat: a JSON answer, and the bearer-token security requirement. */

/** A response whose body is `schema` as application/json. */
export const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

/** The route takes `Authorization: Bearer <token>` (the bearerAuth scheme api/app.ts registers). */
export const security = [{ bearerAuth: [] }];
