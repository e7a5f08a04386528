-- A tenant whose aws_account_id names an account its organization already covers (on that account's own stack) gets
-- no second row for it: the unique (tenant, account) index would refuse the write that set aws_account_id.
CREATE OR REPLACE FUNCTION "tenant_home_account_follows"() RETURNS trigger AS $$
BEGIN
  IF NEW."aws_account_id" IS NULL OR EXISTS (
    SELECT 1 FROM "tenant_aws_accounts"
    WHERE "organization_id" = NEW."id" AND "account_id" = NEW."aws_account_id" AND "source" = 'organization'
  ) THEN
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
