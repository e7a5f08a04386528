CREATE TABLE "credential_data_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"kms_key_id" text NOT NULL,
	"encrypted_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "credential_data_keys_kms_key_unique" ON "credential_data_keys" USING btree ("kms_key_id");