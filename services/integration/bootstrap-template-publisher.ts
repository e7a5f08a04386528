/**
 * Publishes each bootstrap template version to the platform's template bucket under a content-addressed key, so a
 * quick-create link keeps pointing at the exact template it was made for. The S3 client comes from the caller
 * (endpoint and credentials from the standard AWS environment); the bucket must let CloudFormation in the customer's
 * account read `bootstrap/*` (a bucket policy set up with the platform, not here).
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { z } from "zod";
import { awsRegionSchema } from "../../programs/tenant/config";
import { templateVersion } from "./bootstrap-template-fns";

export const BOOTSTRAP_TEMPLATE_PREFIX = "bootstrap/";

/** Platform settings for publishing (read and validated once, at the edge). */
export const bootstrapPublishSettingsSchema = z.object({
  bucket: z.string().regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, "must be an S3 bucket name without dots (3-63 lowercase letters, digits, dashes)"),
  region: awsRegionSchema,
});

export type BootstrapPublishSettings = z.output<typeof bootstrapPublishSettingsSchema>;

export interface PublishedTemplate {
  version: string;
  key: string;
  /** Virtual-hosted https URL of the object: what the quick-create link's templateURL carries. */
  url: string;
  /** False when this version was already in the bucket. */
  uploaded: boolean;
}

export function templateObjectUrl(settings: BootstrapPublishSettings, key: string): string {
  return `https://${settings.bucket}.s3.${settings.region}.amazonaws.com/${key}`;
}

/** Publishes `body` under its version (default: the hash of the body; a bootstrap template names its own). */
export async function publishBootstrapTemplate(
  s3: S3Client,
  settings: BootstrapPublishSettings,
  body: string,
  version = templateVersion(body),
): Promise<PublishedTemplate> {
  const key = `${BOOTSTRAP_TEMPLATE_PREFIX}${version}.json`;
  const url = templateObjectUrl(settings, key);
  const { HeadObjectCommand, NotFound, PutObjectCommand } = await import("@aws-sdk/client-s3");
  try {
    await s3.send(new HeadObjectCommand({ Bucket: settings.bucket, Key: key }));
    return { version, key, url, uploaded: false };
  } catch (error) {
    if (!(error instanceof NotFound)) throw error;
  }
  await s3.send(
    new PutObjectCommand({
      Bucket: settings.bucket,
      Key: key,
      Body: body,
      ContentType: "application/json",
      CacheControl: "public, max-age=31536000, immutable",
    }),
  );
  return { version, key, url, uploaded: true };
}

/** A published version's template, or undefined when the bucket has none under it. */
export async function readPublishedTemplate(s3: S3Client, settings: BootstrapPublishSettings, version: string): Promise<string | undefined> {
  const { GetObjectCommand, NoSuchKey } = await import("@aws-sdk/client-s3");
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: settings.bucket, Key: `${BOOTSTRAP_TEMPLATE_PREFIX}${version}.json` }));
    return await object.Body?.transformToString("utf8");
  } catch (error) {
    if (error instanceof NoSuchKey) return undefined;
    throw error;
  }
}
