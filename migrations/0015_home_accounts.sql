-- Today's integration becomes the tenant's first (home) account: same account, same stack name (tenant-<slug>), so
-- its stack continues as it is; the tenant's status is its status.
INSERT INTO "tenant_aws_accounts" ("organization_id", "account_id", "source", "stack_name", "status", "status_reasons", "created_at")
SELECT "id", "aws_account_id", 'home', 'tenant-' || "slug", "onboarding_status", "status_reasons", "created_at"
FROM "organizations"
WHERE "aws_account_id" IS NOT NULL
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- The home account follows the tenant's aws_account_id wherever it is written (settings, the bootstrap connection):
-- one trigger, so no writer can forget it. A tenant whose account is cleared keeps no home account.
CREATE OR REPLACE FUNCTION "tenant_home_account_follows"() RETURNS trigger AS $$
BEGIN
  IF NEW."aws_account_id" IS NULL THEN
    DELETE FROM "tenant_aws_accounts" WHERE "organization_id" = NEW."id" AND "source" = 'home';
  ELSE
    INSERT INTO "tenant_aws_accounts" ("organization_id", "account_id", "source", "stack_name", "status")
    VALUES (NEW."id", NEW."aws_account_id", 'home', 'tenant-' || NEW."slug", NEW."onboarding_status")
    ON CONFLICT ("organization_id") WHERE "source" = 'home'
    DO UPDATE SET "account_id" = EXCLUDED."account_id", "updated_at" = now();
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER "tenant_home_account_follows"
AFTER INSERT OR UPDATE OF "aws_account_id" ON "organizations"
FOR EACH ROW EXECUTE FUNCTION "tenant_home_account_follows"();
