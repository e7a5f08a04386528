CREATE TABLE "tenant_external_ids" (
	"organization_id" integer PRIMARY KEY NOT NULL,
	"external_id_sealed" text NOT NULL,
	"external_id_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "tenant_external_ids_hash_unique" UNIQUE("external_id_hash"),
	CONSTRAINT "tenant_external_ids_envelope_check" CHECK ("tenant_external_ids"."external_id_sealed" ~ '^v[0-9]+:')
);
--> statement-breakpoint
ALTER TABLE "tenant_external_ids" ADD CONSTRAINT "tenant_external_ids_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;