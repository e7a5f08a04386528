CREATE TABLE "run_plans" (
	"id" uuid PRIMARY KEY NOT NULL,
	"organization_id" integer NOT NULL,
	"preview_run_id" uuid NOT NULL,
	"plan_sealed" text NOT NULL,
	"key_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "run_plans" ADD CONSTRAINT "run_plans_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "run_plans" ADD CONSTRAINT "run_plans_preview_run_id_runs_id_fk" FOREIGN KEY ("preview_run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;