// The onboarding progress panel: overall bar, one step per phase (check, spinner, or the reason and the fix when
// it needs a person), and the completion line at 100 %.
import { h, replace } from "./dom.js";

export const CHECK_FIXES = {
  integration_healthy: "Reconnect AWS: the bootstrap role must exist and trust Mini-XDR with your external ID.",
  assets_discovered: "Check that Settings lists the regions you run in, then refresh discovery.",
  agents_targeted: "Tag the instances to monitor with the target tag shown in Settings, or target all managed instances.",
  agents_installed: "Instances need the SSM agent and an instance profile with AmazonSSMManagedInstanceCore; then retry from Deployment.",
  agents_checked_in: "The agent must reach the Mini-XDR backend over HTTPS: check outbound access from the instances.",
  clusters_protected: "Run an up; if a cluster's agent stays short of its nodes, check that its nodes can pull the agent image.",
};

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** An instance as a person tells it from others: its name and its ID (two may share a name). */
export const instanceLabel = (instance) => (instance.name ? `${instance.name} (${instance.asset_id})` : instance.asset_id);

/** The failed installs, one item per cause (read from what the install step printed), each with its own fix. */
function installFailures(failedInstances, failedCount) {
  const groups = new Map();
  for (const instance of failedInstances) {
    const key = instance.failure ? `${instance.failure.cause}\n${instance.failure.reason}` : `other\n${instance.reason ?? ""}`;
    groups.set(key, [...(groups.get(key) ?? []), instance]);
  }
  if (groups.size === 0) return [{ reason: `${plural(failedCount, "instance")} failed to install the agent.`, fix: CHECK_FIXES.agents_installed }];
  return [...groups.values()].map((instances) => {
    const { failure, reason } = instances[0];
    const names = `${instances.slice(0, 3).map(instanceLabel).join(", ")}${instances.length > 3 ? ` and ${instances.length - 3} more` : ""}`;
    return {
      reason: `${plural(instances.length, "instance")} failed to install the agent (${names}): ${failure?.reason ?? reason ?? "no detail"}`,
      fix: failure?.fix ?? CHECK_FIXES.agents_installed,
      output: failure?.output_lines.length
        ? { label: `The install step's last lines on ${instanceLabel(instances[0])}`, lines: failure.output_lines }
        : null,
    };
  });
}

/**
 * progress: the JSON of GET .../progress (or null before the first event); details: { validation, deployment }
 * (latest answers, for reasons); actions: { retry(), rescan() }.
 */
export function renderProgress(container, progress, details, actions) {
  if (!progress) {
    replace(container, h("p", { className: "muted" }, "Waiting for the first progress update…"));
    return;
  }
  const overall = progress.overall_progress;
  const fill = h("div", { className: "bar-fill" });
  fill.style.width = `${overall}%`;
  const failedChecks = (details.validation?.checks ?? []).filter((check) => check.status === "failed");
  const failedInstances = (details.deployment?.instances ?? []).filter((instance) => instance.agent_status === "failed");

  const steps = [
    {
      id: "stack",
      name: "Setting up secure access",
      phase: progress.stack,
      line: `${progress.stack.resources_done} of ${progress.stack.resources_total} resources ready`,
      problem: () => ({
        reason: "The last update of your Mini-XDR stack failed.",
        fix: "Check that the bootstrap role still exists in your account; your platform operator has the run's diagnostics and can re-run it.",
      }),
    },
    {
      id: "discovery",
      name: "Discovering assets",
      phase: progress.discovery,
      line: `${plural(progress.discovery.assets_found, "asset")} found`,
      problem: () => ({
        reason: progress.discovery.regions_failed.length
          ? `Discovery failed in ${progress.discovery.regions_failed.join(", ")}.`
          : "The last discovery scan failed.",
        fix: "Check that these regions are enabled in your account and listed in Settings, then scan again.",
        action: h("button", { type: "button", className: "secondary", "data-admin-only": true, onclick: actions.rescan }, "Scan again"),
      }),
    },
    {
      id: "deployment",
      name: "Deploying agents",
      phase: progress.deployment,
      line: `${plural(progress.deployment.agents_deployed, "agent")} deployed`,
      problem: () => ({
        items: installFailures(failedInstances, progress.deployment.failed),
        action: h("button", { type: "button", className: "secondary", "data-admin-only": true, onclick: actions.retry }, "Retry failed instances"),
      }),
    },
    {
      id: "validation",
      name: "Validating setup",
      phase: progress.validation,
      line: `${plural(progress.validation.checks_passed, "check")} passed`,
      problem: () => ({
        reason: failedChecks.length ? failedChecks.map((check) => check.reason ?? check.name) : "A validation check failed.",
        fix: failedChecks.map((check) => CHECK_FIXES[check.name]).filter(Boolean),
      }),
    },
  ];

  replace(
    container,
    h(
      "div",
      { className: "overall" },
      h(
        "div",
        {
          className: "bar",
          role: "progressbar",
          "aria-label": "Overall onboarding progress",
          "aria-valuemin": 0,
          "aria-valuemax": 100,
          "aria-valuenow": overall,
          "aria-valuetext": `${overall} %`,
        },
        fill,
      ),
      h("p", { className: "overall-value", "aria-hidden": "true" }, `${overall} %`),
    ),
    h(
      "ol",
      { className: "steps" },
      steps.map((step) => renderStep(step)),
    ),
    progress.accounts ? accountsLine(progress.accounts) : null,
    kubernetesClusters(progress.deployment.clusters ?? []),
    missingPermissions(progress),
    overall === 100 ? h("p", { className: "complete", role: "status" }, "Setup complete: Mini-XDR is now monitoring your environment") : null,
  );
}

const CLUSTER_STATUS_WORDS = {
  protected: "protected",
  deploying: "deploying",
  up_pending: "next update",
  excluded: "excluded",
  action_required: "needs your action",
  pending: "waiting",
};

/** The agent on each EKS cluster found: how far its DaemonSet rolled out, or why it is not there and the fix. */
function kubernetesClusters(clusters) {
  if (clusters.length === 0) return null;
  const protectedCount = clusters.filter((cluster) => cluster.status === "protected").length;
  return h(
    "section",
    { className: "clusters", "aria-labelledby": "clusters-title" },
    h("h2", { id: "clusters-title" }, `Kubernetes clusters (${protectedCount} of ${clusters.length} protected)`),
    h(
      "ul",
      {},
      clusters.map((cluster) =>
        h(
          "li",
          { "data-cluster": `${cluster.region}/${cluster.name}`, className: `cluster cluster-${cluster.status}` },
          h(
            "p",
            {},
            h("strong", {}, cluster.name),
            ` (${cluster.region}${cluster.aws_account_id ? `, account ${cluster.aws_account_id}` : ""}): ${CLUSTER_STATUS_WORDS[cluster.status] ?? cluster.status}`,
            cluster.desired === null ? "" : `, agent ready on ${cluster.ready} of ${plural(cluster.desired, "node")}`,
          ),
          cluster.reason && cluster.status !== "protected" ? h("p", { className: "small" }, cluster.reason) : null,
          cluster.fix && cluster.status === "action_required"
            ? h("p", { className: "small" }, h("strong", {}, "How to fix: "), h("code", {}, cluster.fix))
            : null,
        ),
      ),
    ),
  );
}

/** What AWS refused the platform, each with its fix; regions an organization's policy closes are said apart. */
function missingPermissions(progress) {
  const missing = progress.missing_permissions ?? [];
  const excluded = progress.discovery.regions_excluded_by_organization ?? [];
  if (missing.length === 0 && excluded.length === 0) return null;
  return h(
    "section",
    { className: "problem missing-permissions", "aria-labelledby": "missing-permissions-title" },
    h("h2", { id: "missing-permissions-title" }, `Missing permissions (${missing.length})`),
    excluded.length
      ? h(
          "p",
          {},
          `Excluded by your organization: ${excluded.join(", ")}. Its service control policy denies reading these regions, so Mini-XDR does not look there.`,
        )
      : null,
    h(
      "ul",
      {},
      missing.map((entry) =>
        h(
          "li",
          { "data-missing-permission": `${entry.region} ${entry.action}` },
          h("p", {}, `${entry.reason} (account ${entry.aws_account_id}).`),
          h("p", { className: "small" }, h("strong", {}, "How to fix: "), entry.fix),
        ),
      ),
    ),
  );
}

function renderStep({ id, name, phase, line, problem }) {
  const status = phase.status;
  const icon =
    status === "completed"
      ? h("span", { className: "step-icon done", "aria-hidden": "true" }, "✓")
      : status === "in_progress"
        ? h("span", { className: "step-icon spinner", "aria-hidden": "true" })
        : status === "failed"
          ? h("span", { className: "step-icon failed", "aria-hidden": "true" }, "!")
          : h("span", { className: "step-icon pending", "aria-hidden": "true" }, "○");
  const spoken = { completed: "done", in_progress: "in progress", failed: "needs your action", pending: "not started" }[status];
  const trouble = status === "failed" ? problem() : null;
  return h(
    "li",
    { className: `step step-${status}`, "data-step": id },
    icon,
    h(
      "div",
      { className: "step-body" },
      h("p", { className: "step-title" }, h("strong", {}, name), ` ${phase.progress} %`, h("span", { className: "visually-hidden" }, `, ${spoken}`)),
      h("p", { className: "step-line" }, line),
      trouble
        ? h(
            "div",
            { className: "action-required", role: "group", "aria-label": `${name}: action required` },
            (trouble.items ?? [trouble]).map((item) => [
              [item.reason].flat().map((reason) => h("p", {}, h("strong", {}, "Action required: "), reason)),
              [item.fix]
                .flat()
                .filter(Boolean)
                .map((fix) => h("p", {}, h("strong", {}, "How to fix: "), fix)),
              item.output
                ? h("details", { className: "step-output" }, h("summary", {}, item.output.label), h("pre", {}, item.output.lines.join("\n")))
                : null,
            ]),
            trouble.action ?? null,
          )
        : null,
    ),
  );
}

/** A tenant with organization accounts: the progress above is their mean; how many are where, and who needs action. */
function accountsLine(accounts) {
  const counts = Object.entries(accounts.by_status).map(([status, n]) => `${n} ${status.replaceAll("_", " ")}`);
  const needing = accounts.accounts.filter((account) => account.status === "action_required" || account.status === "failed");
  return h(
    "div",
    { className: "accounts-progress", id: "accounts-progress" },
    h("p", {}, h("strong", {}, `Across your ${plural(accounts.total, "AWS account")}: `), counts.join(", ")),
    needing.length
      ? h(
          "ul",
          { className: "small" },
          needing.slice(0, 5).map((account) => h("li", {}, `${account.name ?? account.account_id}: ${account.reasons[0]?.reason ?? account.status}`)),
        )
      : null,
    needing.length > 5 ? h("p", { className: "small muted" }, `and ${needing.length - 5} more: see Accounts.`) : null,
  );
}
