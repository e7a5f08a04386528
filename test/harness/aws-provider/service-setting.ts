/**
 * `aws:ssm/serviceSetting:ServiceSetting`.
 *
 * moto implements neither GetServiceSetting nor UpdateServiceSetting (it answers 500; shared/TOOLCHAIN-NOTES.md), so,
 * as for associations, the stand-in keeps service settings in its own store: one JSON file per setting under
 * `$STANDIN_AWS_STATE_DIR/ssm-service-settings/<account>/<region>/<setting id, encoded>.json`, with the shape of
 * SSM's `ServiceSetting`. Service settings are regional in AWS (one value per account and region), and so is the
 * store. A setting without a file has its default value; deleting the resource resets it (ResetServiceSetting).
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { standInStateDir } from "./association-store";
import type { AwsContext } from "./config";
import { awsFailure, compact, type ResourceHandler } from "./resource";
import type { Props } from "./values";

export interface StandInServiceSetting {
  SettingId: string;
  SettingValue: string;
  ARN: string;
  Status: "Customized";
  LastModifiedDate: string;
  LastModifiedUser: string;
  AccountId: string;
  Region: string;
}

function settingsDir(root: string, accountId: string, region: string): string {
  return join(root, "ssm-service-settings", accountId || "unknown-account", region);
}

const fileOf = (root: string, accountId: string, region: string, settingId: string) =>
  join(settingsDir(root, accountId, region), `${encodeURIComponent(settingId)}.json`);

/** `arn:aws:ssm:<region>:<account>:servicesetting/ssm/x` or `/ssm/x` → `{ settingId: "/ssm/x", region?, account? }`. */
export function parseSettingId(idOrArn: string): { settingId: string; region?: string; accountId?: string } {
  const arn = /^arn:aws[\w-]*:ssm:([^:]*):(\d*):servicesetting(\/.+)$/.exec(idOrArn);
  if (arn) return { settingId: arn[3]!, region: arn[1] || undefined, accountId: arn[2] || undefined };
  return { settingId: idOrArn };
}

export async function getStandInServiceSetting(
  filter: { accountId: string; region: string; settingId: string },
  root: string = standInStateDir(),
): Promise<StandInServiceSetting | undefined> {
  try {
    return JSON.parse(await readFile(fileOf(root, filter.accountId, filter.region, filter.settingId), "utf8")) as StandInServiceSetting;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function putSetting(root: string, setting: StandInServiceSetting): Promise<void> {
  await mkdir(settingsDir(root, setting.AccountId, setting.Region), { recursive: true });
  const file = fileOf(root, setting.AccountId, setting.Region, setting.SettingId);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, JSON.stringify(setting, null, 2));
  await rename(tmp, file);
}

/** The setting of this provider's account and region, refusing an ARN of another one (as SSM does). */
function locate(ctx: AwsContext, inputs: Props): { settingId: string; region: string } {
  const region = ctx.region(inputs.region);
  const parsed = parseSettingId(String(inputs.settingId));
  if ((parsed.region && parsed.region !== region) || (parsed.accountId && parsed.accountId !== ctx.accountId)) {
    throw Object.assign(new Error(`setting ${String(inputs.settingId)} is not of account ${ctx.accountId} in ${region}`), {
      name: "ValidationException",
    });
  }
  return { settingId: parsed.settingId, region };
}

function outputs(inputs: Props, setting: StandInServiceSetting): Props {
  return compact({ ...inputs, arn: setting.ARN, status: setting.Status, region: setting.Region, settingValue: setting.SettingValue });
}

async function write(ctx: AwsContext, inputs: Props): Promise<StandInServiceSetting> {
  const { settingId, region } = locate(ctx, inputs);
  const setting: StandInServiceSetting = {
    SettingId: settingId,
    SettingValue: String(inputs.settingValue),
    ARN: `arn:aws:ssm:${region}:${ctx.accountId}:servicesetting${settingId}`,
    Status: "Customized",
    LastModifiedDate: new Date().toISOString(),
    LastModifiedUser: `arn:aws:sts::${ctx.accountId}:assumed-role`,
    AccountId: ctx.accountId,
    Region: region,
  };
  await putSetting(standInStateDir(), setting);
  return setting;
}

export const serviceSetting: ResourceHandler = {
  token: "aws:ssm/serviceSetting:ServiceSetting",
  inputs: ["settingId", "settingValue", "region"],
  replaceOnChanges: ["settingId", "region"],
  computedInputs: ["region"],
  validate(news) {
    const failures = [];
    if (news.settingId === undefined) failures.push({ property: "settingId", reason: "required" });
    if (news.settingValue === undefined) failures.push({ property: "settingValue", reason: "required" });
    return failures;
  },
  async create(ctx, inputs) {
    try {
      const setting = await write(ctx, inputs);
      return { id: String(inputs.settingId), outs: outputs(inputs, setting) };
    } catch (error) {
      throw awsFailure(`updating SSM Service Setting (${String(inputs.settingId)})`, error);
    }
  },
  async read(ctx, id, state) {
    const { settingId, region } = locate(ctx, { ...state, settingId: state.settingId ?? id });
    const setting = await getStandInServiceSetting({ accountId: ctx.accountId, region, settingId });
    return setting ? outputs(state, setting) : undefined;
  },
  async update(ctx, _id, _olds, news) {
    try {
      return outputs(news, await write(ctx, news));
    } catch (error) {
      throw awsFailure(`updating SSM Service Setting (${String(news.settingId)})`, error);
    }
  },
  async delete(ctx, id, state) {
    const { settingId, region } = locate(ctx, { ...state, settingId: state.settingId ?? id });
    await rm(fileOf(standInStateDir(), ctx.accountId, region, settingId), { force: true });
  },
};
