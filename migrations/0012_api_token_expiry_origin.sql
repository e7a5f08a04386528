CREATE TYPE "public"."api_token_origin" AS ENUM('environment', 'generated', 'api');--> statement-breakpoint
ALTER TABLE "api_tokens" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "api_tokens" ADD COLUMN "origin" "api_token_origin" DEFAULT 'api' NOT NULL;--> statement-breakpoint
-- Earlier bootstrap tokens (ADMIN_TOKEN, or generated at a first start: they cannot be told apart) count as ADMIN_TOKENs: the next start with an ADMIN_TOKEN revokes them.
UPDATE "api_tokens" SET "origin" = 'environment' WHERE "name" = 'bootstrap-admin' AND "scope" = 'platform_admin';
