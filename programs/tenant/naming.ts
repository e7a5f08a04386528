/** Names of the customer-side resources, derived from the tenant slug. */
export function resourceNames(tenantSlug: string) {
  return {
    roleName: `MiniXdrAccess-${tenantSlug}`,
    // At most 64 characters with the longest slug (40).
    defaultHostManagementRoleName: `MiniXdr-HostManagement-${tenantSlug}`,
    rolePolicyName: "mini-xdr-access",
    parameterName: `/mini-xdr/${tenantSlug}/agent-config`,
    documentName: `MiniXdr-InstallAgent-${tenantSlug}`,
    associationName: `mini-xdr-agent-${tenantSlug}`,
    sessionName: `mini-xdr-onboarding-${tenantSlug}`,
    kubernetesNamespace: "mini-xdr",
  };
}

/** The SSM service setting that names the Default Host Management Configuration role of a region. */
export function defaultHostManagementSettingId(region: string, accountId: string): string {
  return `arn:aws:ssm:${region}:${accountId}:servicesetting/ssm/managed-instance/default-ec2-instance-management-role`;
}

/** AWS's managed policy for the Default Host Management Configuration role. */
export const DEFAULT_HOST_MANAGEMENT_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedEC2InstanceDefaultPolicy";

/** The roles the customer creates for the platform (quick-create templates): the same names in every account. */
export function customerRoleNames(tenantSlug: string) {
  return {
    bootstrapRoleName: `MiniXdrBootstrap-${tenantSlug}`,
    organizationReaderRoleName: `MiniXdrOrgReader-${tenantSlug}`,
  };
}
