ALTER TABLE "organizations" ADD COLUMN "bootstrap_version" text;--> statement-breakpoint
ALTER TABLE "organizations" ADD COLUMN "bootstrap_version_read_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "held_for" jsonb;