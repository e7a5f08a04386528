/** Names of the customer-side resources, derived from the tenant slug. */
export function resourceNames(tenantSlug: string) {
  return {
    roleName: `MiniXdrAccess-${tenantSlug}`,
    rolePolicyName: "mini-xdr-access",
    parameterName: `/mini-xdr/${tenantSlug}/agent-config`,
    documentName: `MiniXdr-InstallAgent-${tenantSlug}`,
    associationName: `mini-xdr-agent-${tenantSlug}`,
    sessionName: `mini-xdr-onboarding-${tenantSlug}`,
    kubernetesNamespace: "mini-xdr",
  };
}
