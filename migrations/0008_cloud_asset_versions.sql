CREATE TABLE "cloud_asset_versions" (
	"organization_id" integer NOT NULL,
	"session" integer NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL,
	CONSTRAINT "cloud_asset_versions_pkey" PRIMARY KEY("organization_id","session")
);
