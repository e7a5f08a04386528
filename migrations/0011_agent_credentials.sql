ALTER TABLE "agents" ADD COLUMN "credential_hash" text;--> statement-breakpoint
CREATE UNIQUE INDEX "agents_credential_hash_unique" ON "agents" USING btree ("credential_hash");