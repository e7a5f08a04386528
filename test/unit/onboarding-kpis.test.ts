import { describe, expect, it } from "vitest";
import { onboardingKpis, percentile, secondsToOnboard } from "../../services/core/onboarding-kpis-fns";

const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1) + seconds * 1000);

describe("onboarding KPIs", () => {
  it("nearest-rank percentiles", () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([7], 90)).toBe(7);
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90)).toBe(9);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 90)).toBe(10);
  });

  it("time to onboard needs both milestones in order", () => {
    expect(secondsToOnboard({ connectedAt: at(0), completedAt: at(245) })).toBe(245);
    expect(secondsToOnboard({ connectedAt: at(0), completedAt: null })).toBeNull();
    expect(secondsToOnboard({ connectedAt: null, completedAt: at(5) })).toBeNull();
    expect(secondsToOnboard({ connectedAt: at(10), completedAt: at(5) })).toBeNull();
  });

  it("completion rate over tenants that connected; durations over those that completed", () => {
    const kpis = onboardingKpis([
      { connectedAt: at(0), completedAt: at(120) },
      { connectedAt: at(0), completedAt: at(300) },
      { connectedAt: at(0), completedAt: at(200) },
      { connectedAt: at(0), completedAt: null },
      // Never connected: not in the cohort.
      { connectedAt: null, completedAt: null },
    ]);
    expect(kpis).toEqual({
      tenantsConnected: 4,
      tenantsCompleted: 3,
      completionRate: 0.75,
      medianSecondsToOnboard: 200,
      p90SecondsToOnboard: 300,
    });
    expect(onboardingKpis([])).toMatchObject({ tenantsConnected: 0, completionRate: null, medianSecondsToOnboard: null });
  });
});
