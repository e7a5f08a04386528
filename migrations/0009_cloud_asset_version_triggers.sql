-- Bumps the (tenant, session) rows of cloud_asset_versions for the tenants a statement on cloud_assets touched.
CREATE FUNCTION "bump_cloud_asset_versions"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO "cloud_asset_versions" ("organization_id", "session")
      SELECT DISTINCT "organization_id", pg_backend_pid() FROM "changed_old"
      ON CONFLICT ("organization_id", "session") DO UPDATE SET "version" = "cloud_asset_versions"."version" + 1;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO "cloud_asset_versions" ("organization_id", "session")
      SELECT "organization_id", pg_backend_pid() FROM "changed_old" UNION SELECT "organization_id", pg_backend_pid() FROM "changed_new"
      ON CONFLICT ("organization_id", "session") DO UPDATE SET "version" = "cloud_asset_versions"."version" + 1;
  ELSE
    INSERT INTO "cloud_asset_versions" ("organization_id", "session")
      SELECT DISTINCT "organization_id", pg_backend_pid() FROM "changed_new"
      ON CONFLICT ("organization_id", "session") DO UPDATE SET "version" = "cloud_asset_versions"."version" + 1;
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER "cloud_assets_version_insert" AFTER INSERT ON "cloud_assets"
  REFERENCING NEW TABLE AS "changed_new" FOR EACH STATEMENT EXECUTE FUNCTION "bump_cloud_asset_versions"();
--> statement-breakpoint
CREATE TRIGGER "cloud_assets_version_update" AFTER UPDATE ON "cloud_assets"
  REFERENCING OLD TABLE AS "changed_old" NEW TABLE AS "changed_new" FOR EACH STATEMENT EXECUTE FUNCTION "bump_cloud_asset_versions"();
--> statement-breakpoint
CREATE TRIGGER "cloud_assets_version_delete" AFTER DELETE ON "cloud_assets"
  REFERENCING OLD TABLE AS "changed_old" FOR EACH STATEMENT EXECUTE FUNCTION "bump_cloud_asset_versions"();
