/**
 * The Mini Corp estate (shared/fixtures/mini-corp.json) in the moto server, in the account of the credentials given
 * (moto maps an assumed role's session to the role's account). moto derives an instance's Platform from its AMI, so
 * Windows hosts are launched from one of moto's default Windows AMIs and Linux hosts from an AMI without a platform.
 */
import { CreateSubnetCommand, CreateVpcCommand, DescribeImagesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { CreateDBInstanceCommand, RDSClient } from "@aws-sdk/client-rds";
import type { CredentialsProvider } from "../../services/core/assume-role";
import { miniCorp } from "../fixtures/tenant-config";

const HOME = miniCorp.organization.home_region;

export async function amiIds(ec2: EC2Client): Promise<{ windows: string; linux: string }> {
  const windows = await ec2.send(new DescribeImagesCommand({ Filters: [{ Name: "platform", Values: ["windows"] }] }));
  const all = await ec2.send(new DescribeImagesCommand({ Owners: ["amazon"] }));
  const win = windows.Images?.[0]?.ImageId;
  const linux = all.Images?.find((image) => !image.Platform && image.ImageId)?.ImageId;
  if (!win || !linux) throw new Error("moto has no default Windows/Linux AMIs (MOTO_EC2_LOAD_DEFAULT_AMIS off?)");
  return { windows: win, linux };
}

/** Seeds the Mini Corp estate in the tenant account; returns instance ids by fixture name. */
export async function seedMiniCorp(credentials: CredentialsProvider): Promise<Map<string, string>> {
  const ec2 = new EC2Client({ region: HOME, credentials });
  const rds = new RDSClient({ region: HOME, credentials });
  try {
    const amis = await amiIds(ec2);
    const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: "10.100.0.0/16" }));
    const subnet = await ec2.send(new CreateSubnetCommand({ VpcId: vpc.Vpc!.VpcId!, CidrBlock: "10.100.0.0/16" }));
    const ids = new Map<string, string>();
    for (const instance of miniCorp.instances) {
      const launched = await ec2.send(
        new RunInstancesCommand({
          ImageId: instance.platform === "windows" ? amis.windows : amis.linux,
          InstanceType: instance.instance_type as never,
          MinCount: 1,
          MaxCount: 1,
          SubnetId: subnet.Subnet!.SubnetId!,
          PrivateIpAddress: instance.private_ip,
          TagSpecifications: [{ ResourceType: "instance", Tags: Object.entries(instance.tags).map(([Key, Value]) => ({ Key, Value })) }],
        }),
      );
      ids.set(instance.name, launched.Instances![0]!.InstanceId!);
    }
    for (const db of miniCorp.databases) {
      await rds.send(
        new CreateDBInstanceCommand({
          DBInstanceIdentifier: db.identifier,
          Engine: db.engine,
          EngineVersion: db.engine_version,
          DBInstanceClass: db.instance_class,
          AllocatedStorage: 20,
          MasterUsername: "minicorp",
          MasterUserPassword: "not-a-real-password-1",
        }),
      );
    }
    return ids;
  } finally {
    ec2.destroy();
    rds.destroy();
  }
}
