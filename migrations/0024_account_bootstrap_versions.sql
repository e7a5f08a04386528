ALTER TABLE "tenant_aws_accounts" ADD COLUMN "bootstrap_version" text;--> statement-breakpoint
ALTER TABLE "tenant_aws_accounts" ADD COLUMN "bootstrap_version_read_at" timestamp with time zone;