ALTER TABLE "cloud_assets" ADD COLUMN "aws_account_id" text;--> statement-breakpoint
ALTER TABLE "discovery_scans" ADD COLUMN "aws_account_id" text;--> statement-breakpoint
CREATE INDEX "cloud_assets_org_account_region_idx" ON "cloud_assets" USING btree ("organization_id","aws_account_id","region");--> statement-breakpoint
-- Every asset found so far was found by the tenant's home stack's scan, in the account the tenant connected.
UPDATE "cloud_assets" AS a SET "aws_account_id" = o."aws_account_id" FROM "organizations" AS o WHERE o."id" = a."organization_id" AND a."aws_account_id" IS NULL;
