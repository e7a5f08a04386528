/**
 * Pure: the onboarding KPIs (the seeds' success metrics) from each tenant's two milestones.
 *
 * - A tenant enters the cohort when it first connected AWS (its first `integration.aws.connect` audit row).
 * - It counts as onboarded when it first reached `completed` (its first `onboarding.completed` audit row, written by
 *   the status transition), whatever happened after (an offboarded tenant that once completed still counts).
 * - completion rate = onboarded / cohort; time to onboard = completed - connected, median and p90 by nearest rank.
 * The audit trail outlives tenants' other rows, so offboarded tenants keep their place in the figures.
 */

export interface TenantMilestones {
  connectedAt: Date | null;
  completedAt: Date | null;
}

export interface OnboardingKpis {
  tenantsConnected: number;
  tenantsCompleted: number;
  /** 0..1, null with no connected tenant. */
  completionRate: number | null;
  medianSecondsToOnboard: number | null;
  p90SecondsToOnboard: number | null;
}

/** Seconds from connect to completed, or null when either is missing (or out of order). */
export function secondsToOnboard({ connectedAt, completedAt }: TenantMilestones): number | null {
  if (!connectedAt || !completedAt || completedAt < connectedAt) return null;
  return Math.round((completedAt.getTime() - connectedAt.getTime()) / 1000);
}

/** Nearest-rank percentile (p in 0..100) of the values; null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function onboardingKpis(tenants: readonly TenantMilestones[]): OnboardingKpis {
  const connected = tenants.filter((tenant) => tenant.connectedAt !== null);
  const durations = connected.map(secondsToOnboard).filter((seconds): seconds is number => seconds !== null);
  return {
    tenantsConnected: connected.length,
    tenantsCompleted: durations.length,
    completionRate: connected.length === 0 ? null : durations.length / connected.length,
    medianSecondsToOnboard: percentile(durations, 50),
    p90SecondsToOnboard: percentile(durations, 90),
  };
}
