// The platform operator's console: KPIs and tenants (action_required first), a tenant's runs with a preview's
// per-resource diff, approving and applying a saved plan, and offboarding with a confirmation naming the tenant.
import { activityCard } from "./activity.js";
import { api, followEvents, tenantPath } from "./api.js";
import { announce, badge, confirmDialog, formatDuration, formatTime, formDialog, h, replace } from "./dom.js";
import { inviteDialog } from "./invite.js";

export function mountOperator({ main, nav }) {
  const streams = new AbortController();
  let screenToken = 0;
  replace(nav, h("button", { type: "button", className: "nav-link", "aria-current": "page", onclick: () => showTenants() }, "Tenants"));

  /** A new tenant, then straight to its page, where its admin is invited. */
  async function newTenant() {
    const created = await formDialog({
      title: "New tenant",
      submitLabel: "Create tenant",
      fields: [
        { name: "name", label: "Name", hint: "The customer's name, as people will see it." },
        {
          name: "slug",
          label: "Slug",
          hint: "3-40 lowercase letters, digits or dashes, starting with a letter; it names the tenant's stack and cannot change.",
        },
        {
          name: "aws_account_id",
          path: "integration_settings.aws_account_id",
          label: "AWS account ID (optional)",
          optional: true,
          hint: "The customer's 12-digit account: the one-click link creates the role there. Without it, the customer connects an organization.",
        },
      ],
      submit: async ({ name, slug, aws_account_id }) => {
        const tenant = await api("POST", "/v1/tenants", { name, slug, ...(aws_account_id ? { integration_settings: { aws_account_id } } : {}) });
        return h("p", { role: "status", "data-slug": tenant.slug }, `${tenant.name} is created. Next, invite its admin.`);
      },
    });
    const slug = created?.dataset.slug;
    if (slug) await showTenant(slug);
  }

  async function invite(tenant) {
    await inviteDialog({ title: `Invite to ${tenant.name}`, path: tenantPath(tenant.slug, "/invitations"), defaultRole: "admin" });
  }

  function screen(title, ...children) {
    screenToken++;
    replace(main, h("h1", { id: "screen-title" }, title), children);
    return screenToken;
  }

  async function showTenants() {
    const kpiBox = h(
      "section",
      { className: "card", "aria-labelledby": "kpi-title" },
      h("h2", { id: "kpi-title" }, "Onboarding KPIs"),
      h("p", { className: "muted" }, "Loading…"),
    );
    const list = h(
      "section",
      { className: "card", "aria-labelledby": "tenants-title" },
      h(
        "div",
        { className: "row-between" },
        h("h2", { id: "tenants-title" }, "Tenants"),
        h("button", { type: "button", id: "new-tenant", onclick: () => void newTenant() }, "New tenant…"),
      ),
    );
    const versionsLine = h("p", { className: "small", id: "bootstrap-versions" });
    const token = screen("Tenants", kpiBox, list);
    let overview;
    try {
      overview = await api("GET", "/v1/kpis");
    } catch (error) {
      replace(kpiBox, h("p", { className: "error" }, error.message));
      return;
    }
    if (token !== screenToken) return;
    const { kpis, tenants } = overview;
    const rate = kpis.completion_rate === null ? "–" : `${Math.round(kpis.completion_rate * 1000) / 10} %`;
    replace(
      kpiBox,
      h("h2", { id: "kpi-title" }, "Onboarding KPIs"),
      h(
        "dl",
        { className: "stats" },
        [
          ["Completion rate", rate, "target above 95 %"],
          ["Median time to onboard", formatDuration(kpis.median_seconds_to_onboard), "target under 5 min"],
          ["90th percentile", formatDuration(kpis.p90_seconds_to_onboard), "connect to completed"],
          ["Tenants connected", String(kpis.tenants_connected), `${kpis.tenants_completed} completed`],
        ].map(([name, value, note]) => h("div", {}, h("dt", {}, name), h("dd", {}, value), h("dd", { className: "small muted" }, note))),
      ),
      h(
        "p",
        { className: "small muted" },
        "From each tenant's first AWS connection to its first completed onboarding, over all tenants that connected.",
      ),
      versionsLine,
    );
    void api("GET", "/v1/bootstrap/versions")
      .then(({ current_version: current, versions }) => {
        if (token !== screenToken || versions.length === 0) return;
        replace(
          versionsLine,
          "Bootstrap template versions: ",
          versions
            .map(
              ({ version, tenants }) =>
                `${version ?? "unversioned"}${version === current ? " (current)" : ""}: ${tenants} tenant${tenants === 1 ? "" : "s"}`,
            )
            .join(" · "),
        );
      })
      .catch(() => undefined);
    list.append(
      tenants.length === 0
        ? h("p", { className: "muted" }, "No tenants yet.")
        : h(
            "div",
            { className: "table-scroll static", tabindex: 0, role: "region", "aria-label": "Tenants, scrollable" },
            h(
              "table",
              {},
              h("caption", { className: "visually-hidden" }, "Tenants, those needing action first"),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["Tenant", "Status", "Time to onboard", "Last run"].map((text) => h("th", { scope: "col" }, text)),
                ),
              ),
              h(
                "tbody",
                {},
                tenants.map((tenant) =>
                  h(
                    "tr",
                    { "data-tenant": tenant.slug },
                    h(
                      "td",
                      {},
                      h("button", { type: "button", className: "link", onclick: () => showTenant(tenant.slug) }, tenant.name),
                      h("span", { className: "muted small" }, ` ${tenant.slug}`),
                    ),
                    h("td", {}, badge(tenant.onboarding_status), tenant.drifted ? [" ", badge("drifted")] : []),
                    h("td", {}, formatDuration(tenant.seconds_to_onboard)),
                    h(
                      "td",
                      {},
                      tenant.last_run
                        ? [`${tenant.last_run.kind} `, badge(tenant.last_run.status), ` ${formatTime(tenant.last_run.requested_at)}`]
                        : "–",
                    ),
                  ),
                ),
              ),
            ),
          ),
    );
  }

  async function showTenant(slug, selectedRunId) {
    const path = (rest = "") => tenantPath(slug, rest);
    const header = h("div", { id: "tenant-header" });
    const runsBox = h("section", { className: "card", "aria-labelledby": "runs-title" }, h("h2", { id: "runs-title" }, "Runs"));
    const accountsBox = h(
      "section",
      { className: "card", "aria-labelledby": "accounts-title", id: "tenant-accounts" },
      h("h2", { id: "accounts-title" }, "AWS accounts"),
    );
    const detail = h(
      "section",
      { className: "card", "aria-labelledby": "run-title", id: "run-detail" },
      h("h2", { id: "run-title" }, "Run"),
      h("p", { className: "muted" }, "Choose a run to see its changes."),
    );
    const message = h("div", { role: "status", id: "operator-message" });
    const token = screen(
      `Tenant ${slug}`,
      h("p", {}, h("button", { type: "button", className: "link", onclick: () => showTenants() }, "← All tenants")),
      header,
      message,
      accountsBox,
      runsBox,
      detail,
      activityCard(path()),
    );
    const [tenant, { runs }, accounts] = await Promise.all([api("GET", path()), api("GET", path("/runs?limit=50")), api("GET", path("/accounts"))]);
    if (token !== screenToken) return;
    replace(main.querySelector("#screen-title"), tenant.name);
    const offboarded = tenant.onboarding_status === "offboarded";
    replace(
      header,
      h(
        "p",
        {},
        badge(tenant.onboarding_status),
        tenant.drift?.status === "drifted"
          ? [
              " ",
              badge("drifted"),
              ` ${tenant.drift.resources.map((r) => `${r.urn.split("::").at(-1)} (${r.op === "delete" ? "deleted" : r.properties.join(", ")})`).join("; ")} ·`,
            ]
          : [],
        ` ${tenant.slug} · flow ${tenant.onboarding_flow_version} · approval ${tenant.integration_settings.require_approval ? "required" : "not required"}`,
      ),
      h(
        "div",
        { className: "actions" },
        h(
          "button",
          { type: "button", className: "secondary", disabled: offboarded, onclick: () => startRun(slug, { kind: "preview" }, "Preview") },
          "Preview changes",
        ),
        h("button", { type: "button", id: "invite-admin", disabled: offboarded, onclick: () => void invite(tenant) }, "Invite…"),
        h("button", { type: "button", className: "danger", disabled: offboarded, onclick: () => offboard(tenant) }, "Offboard…"),
      ),
    );
    renderAccounts(slug, accountsBox, accounts);
    runsBox.append(
      runs.length === 0
        ? h("p", { className: "muted" }, "No runs yet.")
        : h(
            "div",
            { className: "table-scroll static", tabindex: 0, role: "region", "aria-label": "Runs, scrollable" },
            h(
              "table",
              {},
              h("caption", { className: "visually-hidden" }, "Runs, newest first"),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["Run", "Status", "Requested", "Changes"].map((text) => h("th", { scope: "col" }, text)),
                ),
              ),
              h(
                "tbody",
                {},
                runs.map((run) =>
                  h(
                    "tr",
                    { "data-run": run.id, "data-kind": run.kind },
                    h(
                      "td",
                      {},
                      h(
                        "button",
                        { type: "button", className: "link", onclick: () => showRun(slug, run.id, detail) },
                        `${run.kind} ${run.id.slice(0, 8)}`,
                      ),
                      run.plan_saved ? h("span", { className: "muted small" }, " plan saved") : null,
                    ),
                    h("td", {}, badge(run.status)),
                    h("td", {}, formatTime(run.requested_at)),
                    h("td", {}, summaryText(run.change_summary)),
                  ),
                ),
              ),
            ),
          ),
    );
    const chosen = selectedRunId ?? runs[0]?.id;
    if (chosen) void showRun(slug, chosen, detail);
  }

  async function showRun(slug, runId, detail) {
    const run = await api("GET", tenantPath(slug, `/runs/${runId}`));
    const changes = (run.resource_changes ?? []).filter((change) => change.op !== "same");
    const approvable = run.kind === "preview" && run.status === "succeeded" && run.plan_saved;
    replace(
      detail,
      h("h2", { id: "run-title" }, `${run.kind} ${run.id.slice(0, 8)}`),
      h(
        "p",
        {},
        badge(run.status),
        ` requested ${formatTime(run.requested_at)} by ${run.actor_name ?? run.actor} · ${summaryText(run.change_summary)}`,
      ),
      run.error
        ? h("div", { className: "action-required" }, h("p", {}, h("strong", {}, "Error: "), run.error.message ?? JSON.stringify(run.error)))
        : null,
      changes.length === 0
        ? h("p", { className: "muted" }, run.resource_changes ? "No resource changes." : "No per-resource changes recorded for this run.")
        : h(
            "div",
            { className: "table-scroll static", tabindex: 0, role: "region", "aria-label": "Per-resource changes, scrollable" },
            h(
              "table",
              { className: "diff" },
              h("caption", {}, "Per-resource changes"),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["Change", "Type", "Resource", "Properties"].map((text) => h("th", { scope: "col" }, text)),
                ),
              ),
              h(
                "tbody",
                {},
                changes.map((change) =>
                  h(
                    "tr",
                    { className: `op-${change.op}` },
                    h("td", {}, badge(change.op)),
                    h("td", {}, change.type),
                    h("td", {}, change.urn.split("::").pop()),
                    h("td", {}, (change.diffs ?? []).join(", ") || "–"),
                  ),
                ),
              ),
            ),
          ),
      approvable
        ? h(
            "div",
            { className: "actions" },
            h("button", { type: "button", id: "approve-apply", onclick: () => approve(slug, run) }, "Approve and apply this plan"),
          )
        : null,
    );
  }

  /** Each account of the tenant with its status, reason and last run; failed or waiting ones can be retried, any excluded. */
  function renderAccounts(slug, box, view) {
    if (view.accounts.length === 0) return box.append(h("p", { className: "muted" }, "No AWS accounts yet."));
    box.append(
      h("p", {}, badge(view.status), ` ${view.total} accounts`, view.starts_stopped ? ` · ${view.starts_stopped}` : ""),
      h(
        "div",
        { className: "table-scroll static", tabindex: 0, role: "region", "aria-label": "AWS accounts, scrollable" },
        h(
          "table",
          {},
          h("caption", { className: "visually-hidden" }, "The tenant's AWS accounts"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Account", "Status", "Reason", "Last run", "Actions"].map((text) => h("th", { scope: "col" }, text)),
            ),
          ),
          h(
            "tbody",
            {},
            view.accounts.map((account) =>
              h(
                "tr",
                { "data-account": account.account_id },
                h("td", {}, `${account.name ?? ""} ${account.account_id}`.trim()),
                h("td", {}, badge(account.status)),
                h(
                  "td",
                  {},
                  account.status_reasons.map((reason) => `${reason.reason}. Fix: ${reason.fix}`).join(" ") || account.out_of_scope_reason || "–",
                ),
                h(
                  "td",
                  {},
                  account.last_run
                    ? h(
                        "button",
                        { type: "button", className: "link", onclick: () => showTenant(slug, account.last_run.id) },
                        `${account.last_run.kind} ${account.last_run.status}`,
                      )
                    : "–",
                ),
                h(
                  "td",
                  {},
                  account.source === "organization" && ["failed", "action_required"].includes(account.status)
                    ? h("button", { type: "button", className: "secondary", onclick: () => accountAction(slug, account, "retry") }, "Retry")
                    : null,
                  account.source === "organization" && !account.offboarded_at
                    ? h("button", { type: "button", className: "danger", onclick: () => accountAction(slug, account, "exclude") }, "Exclude…")
                    : null,
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  async function accountAction(slug, account, action) {
    if (action === "exclude") {
      const ok = await confirmDialog({
        title: `Exclude account ${account.account_id}?`,
        body: h("p", {}, "Mini-XDR destroys what it created in this account and leaves it out of every later listing."),
        confirmLabel: "Exclude",
        danger: true,
      });
      if (!ok) return;
    }
    try {
      const answer = await api("POST", tenantPath(slug, `/accounts/${account.account_id}/${action}`));
      announce(`Account ${account.account_id}: ${answer.status}`);
    } catch (error) {
      announce(`Account ${account.account_id}: ${error.message}`);
    }
    await showTenant(slug);
  }

  async function approve(slug, preview) {
    const ok = await confirmDialog({
      title: `Apply the plan of preview ${preview.id.slice(0, 8)} to ${slug}?`,
      body: h(
        "p",
        {},
        `The engine applies exactly these changes (${summaryText(preview.change_summary)}), and fails if the desired state changed since the preview.`,
      ),
      confirmLabel: "Approve and apply",
    });
    if (ok) await startRun(slug, { kind: "up", plan_run_id: preview.id }, "Apply");
  }

  async function offboard(tenant) {
    const ok = await confirmDialog({
      title: `Offboard ${tenant.name}?`,
      body: h(
        "p",
        {},
        `This destroys every Mini-XDR resource in the AWS account of ${tenant.name} (${tenant.slug}), revokes its tokens and marks its assets removed. History and audit are kept.`,
      ),
      confirmLabel: `Offboard ${tenant.slug}`,
      danger: true,
      requireText: tenant.slug,
    });
    if (ok) await startRun(tenant.slug, null, "Offboarding");
  }

  /** Requests a run (or the offboarding), then follows its events live until it ends and shows the tenant again. */
  async function startRun(slug, body, what) {
    const message = document.getElementById("operator-message");
    let accepted;
    try {
      accepted = body ? await api("POST", tenantPath(slug, "/runs"), body) : await api("POST", tenantPath(slug, "/offboard"));
    } catch (error) {
      if (message) replace(message, h("p", { className: "error" }, `${what} refused: ${error.message}`));
      announce(`${what} refused: ${error.message}`);
      return;
    }
    if (!accepted.run_id) {
      // A tenant connected through its organization alone: its accounts' destroys run in the background.
      await showTenant(slug);
      const text = `${what}: ${accepted.accounts_offboarding} accounts being offboarded`;
      replace(document.getElementById("operator-message"), h("p", { className: "notice" }, text));
      return announce(text);
    }
    await showTenant(slug, accepted.run_id);
    const line = h(
      "p",
      { className: "notice" },
      h("span", { className: "spinner inline", "aria-hidden": "true" }),
      ` ${what}: ${accepted.kind} ${accepted.run_id.slice(0, 8)} queued…`,
    );
    replace(document.getElementById("operator-message"), line);
    announce(`${what} started`);
    let events = 0;
    let ended;
    await followEvents(tenantPath(slug, `/runs/${accepted.run_id}/events`), {
      signal: streams.signal,
      until: (event) => event.event === "end",
      onEvent: (event) => {
        if (event.event === "engine") {
          events++;
          line.lastChild.textContent = ` ${what}: ${accepted.kind} ${accepted.run_id.slice(0, 8)} running (${events} engine events)…`;
        } else if (event.event === "end") ended = JSON.parse(event.data);
      },
    });
    if (!ended || streams.signal.aborted) return;
    await showTenant(slug, accepted.run_id);
    const done = `${what}: ${accepted.kind} ${accepted.run_id.slice(0, 8)} ${ended.status}`;
    replace(document.getElementById("operator-message"), h("p", { className: ended.status === "succeeded" ? "notice" : "error" }, done));
    announce(done);
  }

  void showTenants();
  return () => streams.abort();
}

function summaryText(summary) {
  if (!summary) return "–";
  const parts = Object.entries(summary)
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${n} to ${op}`);
  return parts.length ? parts.join(", ") : "no changes";
}
