CREATE TABLE "credential_key_rotation" (
	"id" text PRIMARY KEY DEFAULT 'credentials' NOT NULL,
	"target_key_id" text NOT NULL,
	"requested_by" text NOT NULL,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	"rows_resealed" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "credential_key_rotation_singleton" CHECK ("credential_key_rotation"."id" = 'credentials')
);
