// The tenant admin's console: quick start (connect AWS, live progress), assets, deployment, validation, settings.
import { activityCard } from "./activity.js";
import { api, apiAllPages, ApiError, followEvents, tenantPath } from "./api.js";
import { dataTable } from "./data-table.js";
import { announce, badge, confirmDialog, formatTime, h, label, replace, staticTable } from "./dom.js";
import { inviteDialog } from "./invite.js";
import { CHECK_FIXES, instanceLabel, renderProgress } from "./progress-view.js";

const PRIORITIES = ["critical", "high", "medium", "low"];
const AGENT_STATUSES = ["checked_in", "installed", "installing", "pending", "failed", "not_targeted", "not_applicable", "unknown"];
const VIEWS = [
  ["quick-start", "Quick start"],
  ["accounts", "Accounts"],
  ["assets", "Assets"],
  ["deployment", "Deployment"],
  ["validation", "Validation"],
  ["settings", "Settings"],
  ["members", "Members"],
];

export function mountTenant({ main, nav, session }) {
  const slug = session.slug;
  const path = (rest = "") => tenantPath(slug, rest);
  const streams = new AbortController();
  const state = { view: "quick-start", progress: null, details: {}, aws: undefined, bootstrap: undefined, waitTimer: undefined, viewToken: 0 };

  const navButtons = VIEWS.map(([id, text]) =>
    h("button", { type: "button", className: "nav-link", "data-view": id, onclick: () => show(id) }, text),
  );
  replace(nav, navButtons);

  const progressPanel = h("div", { className: "progress-panel", id: "progress-panel" });
  const streamState = h("p", { className: "muted small", id: "stream-state" });

  // Live progress over server-sent events: one stream for the page's life.
  followEvents(path("/progress/events"), {
    signal: streams.signal,
    onState: (value) => (streamState.textContent = value === "open" ? "Live" : value === "reconnecting" ? "Reconnecting…" : ""),
    onEvent: (event) => {
      if (event.event !== "progress") return;
      const previous = state.progress;
      state.progress = JSON.parse(event.data);
      void onProgress(previous, state.progress);
    },
  });

  async function onProgress(previous, current) {
    if (previous?.overall_progress !== 100 && current.overall_progress === 100)
      announce("Setup complete: Mini-XDR is now monitoring your environment");
    // Reasons for what needs a person come from the detail endpoints, read when the progress changed, not on a timer.
    const [validation, deployment] = await Promise.all([
      current.validation.status === "failed" || current.validation.checks_passed !== previous?.validation.checks_passed
        ? api("GET", path("/validation")).catch(() => state.details.validation)
        : state.details.validation,
      current.deployment.failed > 0 ? api("GET", path("/deployment?refresh=false")).catch(() => state.details.deployment) : state.details.deployment,
    ]);
    state.details = { validation, deployment };
    renderProgress(progressPanel, state.progress, state.details, actions);
    // A stack run means AWS got connected (by the wait, or by an operator): show it on the card.
    if (state.aws?.status !== "active" && current.stack.run_id && current.stack.run_id !== previous?.stack.run_id && state.view === "quick-start") {
      clearTimeout(state.waitTimer);
      void renderAwsCard(document.getElementById("aws-card"));
    }
    if (state.view === "assets" || state.view === "deployment" || state.view === "validation") {
      const changed =
        !previous ||
        previous.discovery.assets_found !== current.discovery.assets_found ||
        previous.deployment.agents_deployed !== current.deployment.agents_deployed ||
        previous.deployment.failed !== current.deployment.failed ||
        previous.validation.checks_passed !== current.validation.checks_passed;
      if (changed) void views[state.view](true);
    }
  }

  const actions = {
    retry: () => retryFailed(),
    rescan: async () => {
      try {
        await api("POST", path("/discovery/scans"));
        announce("Discovery scan requested");
      } catch (error) {
        announce(`Could not start a scan: ${error.message}`);
      }
    },
  };

  function show(view) {
    state.view = view;
    state.viewToken++;
    for (const button of navButtons) {
      if (button.dataset.view === view) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    void views[view](false);
  }

  function screen(title, ...children) {
    replace(main, h("h1", { id: "screen-title" }, title), children);
  }

  async function loadAws() {
    try {
      state.aws = await api("GET", path("/integrations/aws"));
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
      state.aws = null;
    }
    return state.aws;
  }

  const views = {
    async "quick-start"() {
      const awsCard = h("div", { className: "card provider", id: "aws-card" });
      screen(
        "Welcome to Mini-XDR: get started in minutes with seamless cloud integration",
        h(
          "section",
          { "aria-labelledby": "providers-title" },
          h("h2", { id: "providers-title" }, "Connect your cloud"),
          h(
            "div",
            { className: "cards" },
            awsCard,
            organizationCard(),
            comingSoon("Microsoft Azure", "Subscriptions, virtual machines and more."),
            comingSoon("Google Cloud", "Projects, Compute Engine instances and more."),
          ),
        ),
        h(
          "section",
          { "aria-labelledby": "progress-title", className: "card" },
          h("div", { className: "row-between" }, h("h2", { id: "progress-title" }, "Onboarding progress"), streamState),
          progressPanel,
        ),
      );
      renderProgress(progressPanel, state.progress, state.details, actions);
      await renderAwsCard(awsCard);
    },
    accounts: () => renderAccounts(),
    assets: (refresh) => renderAssets(refresh),
    deployment: (refresh) => renderDeployment(refresh),
    validation: () => renderValidation(),
    settings: () => renderSettings(),
    members: () => renderMembers(),
  };

  function comingSoon(name, text) {
    return h("div", { className: "card provider muted-card" }, h("h3", {}, name), h("p", {}, text), h("p", {}, badge("coming_soon")));
  }

  async function renderAwsCard(card) {
    if (!card) return;
    const head = [h("h3", {}, "Amazon Web Services"), h("p", {}, "Discover EC2 instances, RDS databases and more across all regions")];
    replace(card, head, h("p", { className: "muted" }, "Checking your AWS connection…"));
    const aws = await loadAws().catch((error) => ({ error }));
    if (aws?.error) return replace(card, head, h("p", { className: "error" }, aws.error.message));
    if (aws && aws.status === "active") {
      return replace(card, head, h("p", {}, badge("connected"), ` account ${aws.aws_account_id}, since ${formatTime(aws.configured_at)}`));
    }
    const waitLine = h("div", { className: "wait", "aria-live": "polite", id: "aws-wait" });
    // Enabled once the link (with the tenant's generated external ID) has loaded: a click before would open nothing.
    const button = h(
      "button",
      { type: "button", id: "connect-aws", disabled: true, "data-admin-only": true, onclick: () => connect(waitLine) },
      "Connect AWS",
    );
    replace(
      card,
      head,
      aws ? h("p", {}, badge(aws.status), " The AWS connection needs to be set up again.") : null,
      h(
        "p",
        { className: "small muted" },
        "Opens the AWS console in a new tab with a one-click CloudFormation stack that creates the Mini-XDR role. We connect as soon as the role exists.",
      ),
      button,
      waitLine,
    );
    try {
      state.bootstrap = await api("GET", path("/integrations/aws/bootstrap"));
      button.disabled = false;
      if (state.bootstrap.wait?.status === "waiting") followWait(waitLine);
    } catch (error) {
      state.bootstrap = null;
      button.disabled = true;
      replace(waitLine, h("p", { className: "error" }, `The one-click link is not available: ${error.message}`));
    }
  }

  function connect(waitLine) {
    if (!state.bootstrap) return;
    // Opened from the click itself (no popup blocker); the link never sits in the page's markup.
    window.open(state.bootstrap.quick_create_url, "_blank", "noopener,noreferrer");
    void api("POST", path("/integrations/aws/bootstrap/wait"))
      .then((answer) => {
        state.bootstrap = { ...state.bootstrap, wait: answer.wait };
        followWait(waitLine);
      })
      .catch((error) => replace(waitLine, h("p", { className: "error" }, `Could not start waiting for the role: ${error.message}`)));
  }

  function renderWait(waitLine, wait) {
    if (wait.status === "waiting") {
      replace(
        waitLine,
        h(
          "p",
          {},
          h("span", { className: "spinner inline", "aria-hidden": "true" }),
          ` Waiting for the CloudFormation stack… (attempt ${wait.attempts})`,
        ),
        h(
          "p",
          { className: "small muted" },
          `Create the stack ${state.bootstrap.stack_name} in ${state.bootstrap.region}; this page updates when the role answers.`,
        ),
      );
    } else if (wait.status === "timed_out") {
      replace(
        waitLine,
        h(
          "div",
          { className: "action-required" },
          h("p", {}, h("strong", {}, "Action required: "), `The role did not answer in time${wait.last_error ? ` (${wait.last_error})` : ""}.`),
          h("p", {}, h("strong", {}, "How to fix: "), "Check that the CloudFormation stack finished creating, then press Connect AWS again."),
        ),
      );
    } else if (wait.status === "connected") {
      replace(waitLine, h("p", {}, badge("connected"), " AWS is connected. Setting up Mini-XDR…"));
    }
  }

  // The wait is the service polling AssumeRole; the page reads its state every 2 s while it lasts (bounded by the service).
  function followWait(waitLine) {
    clearTimeout(state.waitTimer);
    const tick = async () => {
      const wait = state.bootstrap.wait;
      renderWait(waitLine, wait);
      if (wait.status === "connected") {
        announce("AWS is connected");
        if (state.view === "quick-start") void renderAwsCard(document.getElementById("aws-card"));
        return;
      }
      if (wait.status !== "waiting" || streams.signal.aborted) return;
      state.waitTimer = setTimeout(async () => {
        try {
          state.bootstrap = await api("GET", path("/integrations/aws/bootstrap"));
        } catch {
          // Try again on the next tick.
        }
        void tick();
      }, 2000);
    };
    void tick();
  }

  // An organization ---------------------------------------------------------------------------------------------
  // One link for every account: the stack in the management account creates a read-only role and a StackSet that
  // puts the Mini-XDR role into each account of the OUs chosen; the service lists the organization and onboards them.
  function organizationCard() {
    const status = h("div", { id: "organization-status", "aria-live": "polite" });
    const management = h("input", {
      id: "org-management-account",
      inputMode: "numeric",
      pattern: "[0-9]{12}",
      required: true,
      placeholder: "123456789012",
    });
    const ous = h("input", { id: "org-target-ous", placeholder: "r-abcd (your root) or ou-abcd-12345678, …" });
    const includeManagement = h("input", { type: "checkbox", id: "org-include-management" });
    const form = h(
      "form",
      {
        id: "organization-form",
        onsubmit: (event) => {
          event.preventDefault();
          void connectOrganization({ management, ous, includeManagement, status });
        },
      },
      h("div", { className: "field" }, h("label", { for: management.id }, "Management account ID"), management),
      h(
        "div",
        { className: "field" },
        h("label", { for: ous.id }, "Root or OUs to cover"),
        ous,
        h("p", { className: "small muted" }, "Your root id covers every account; leave empty to enter it on the AWS page."),
      ),
      h("div", { className: "check-field" }, includeManagement, h("label", { for: includeManagement.id }, "Cover the management account too")),
      h("button", { type: "submit", id: "connect-organization", "data-admin-only": true }, "Connect an organization"),
    );
    return h(
      "div",
      { className: "card provider", id: "organization-card" },
      h("h3", {}, "An AWS Organization"),
      h("p", {}, "Every account of the OUs you choose, including accounts you add later, with one CloudFormation stack."),
      form,
      status,
    );
  }

  async function connectOrganization({ management, ous, includeManagement, status }) {
    const accountId = management.value.trim();
    const targetOus = ous.value
      .split(",")
      .map((id) => id.trim())
      .filter(Boolean);
    // The tab opens from the click itself (no popup blocker), then fills in once the link has loaded.
    const tab = window.open("about:blank", "_blank");
    try {
      const query = new URLSearchParams({ include_management_account: String(includeManagement.checked) });
      if (targetOus.length > 0) query.set("target_ous", targetOus.join(","));
      const link = await api("GET", path(`/integrations/aws/organization/link?${query}`));
      if (tab) {
        tab.opener = null;
        tab.location.href = link.quick_create_url;
      }
      const answer = await api("PUT", path("/integrations/aws/organization"), {
        management_account_id: accountId,
        ...(targetOus.length > 0 ? { target_ous: targetOus } : {}),
        include_management_account: includeManagement.checked,
      });
      replace(
        status,
        answer.listing.status === "complete"
          ? h("p", {}, badge("connected"), ` ${answer.listing.in_scope} accounts in scope; onboarding them now.`)
          : h(
              "p",
              {},
              h("span", { className: "spinner inline", "aria-hidden": "true" }),
              ` Create the stack ${link.stack_name} in ${link.region} in account ${accountId}; we connect when its role answers.`,
            ),
        h("button", { type: "button", className: "link", onclick: () => show("accounts") }, "See the accounts"),
      );
      announce(answer.listing.status === "complete" ? "Organization connected" : "Waiting for the organization stack");
    } catch (error) {
      tab?.close();
      replace(status, h("p", { className: "error", role: "alert" }, error.message));
    }
  }

  // Accounts ---------------------------------------------------------------------------------------------------
  async function renderAccounts() {
    const token = state.viewToken;
    const summaryBox = h("div", { id: "accounts-summary" }, h("p", { className: "muted" }, "Loading your accounts…"));
    const table = dataTable({
      caption: "Your AWS accounts",
      rowKey: (row) => row.account_id,
      search: (row) => `${row.account_id} ${row.name ?? ""} ${row.ou_path.join(" ")}`,
      initialSort: { key: "status", dir: "asc" },
      columns: [
        {
          key: "account_id",
          label: "Account",
          render: (row) => h("span", {}, row.name ?? row.account_id, row.name ? h("span", { className: "muted small" }, ` ${row.account_id}`) : null),
        },
        {
          key: "ou",
          label: "OU",
          sortValue: (row) => row.ou_path.join("/"),
          render: (row) => row.ou_path.at(-1) ?? (row.source === "home" ? "connected directly" : "–"),
        },
        { key: "status", label: "Status", render: (row) => badge(row.status) },
        {
          key: "reason",
          label: "Reason and fix",
          sortValue: (row) => row.status_reasons[0]?.reason ?? row.out_of_scope_reason ?? "",
          render: (row) =>
            row.status_reasons.length > 0
              ? h("span", {}, row.status_reasons.map((reason) => `${reason.reason}. Fix: ${reason.fix}`).join(" "))
              : (row.out_of_scope_reason ?? "–"),
        },
      ],
      filters: [
        {
          key: "status",
          label: "Status",
          options: [
            "completed",
            "deploying",
            "discovering",
            "provisioning",
            "connecting",
            "not_started",
            "action_required",
            "failed",
            "offboarding",
            "offboarded",
          ],
        },
      ],
      emptyText: "No AWS accounts yet: connect one account or an organization on the Quick start page.",
    });
    const coverageBox = h(
      "section",
      { id: "coverage", "aria-labelledby": "coverage-title" },
      h("p", { className: "muted" }, "Loading the coverage…"),
    );
    screen("Accounts", summaryBox, table.element, coverageBox);
    const [view, coverage] = await Promise.all([api("GET", path("/accounts")), api("GET", path("/coverage"))]);
    if (token !== state.viewToken) return;
    replace(coverageBox, ...coverageMatrix(coverage));
    const counts = Object.entries(view.by_status).map(([status, count]) => `${count} ${status.replaceAll("_", " ")}`);
    replace(
      summaryBox,
      h("p", {}, badge(view.status), ` ${view.total} account${view.total === 1 ? "" : "s"}${counts.length ? `: ${counts.join(", ")}` : ""}`),
      view.starts_stopped ? h("p", { className: "action-required" }, view.starts_stopped) : null,
      view.organization?.last_listing
        ? h(
            "p",
            { className: "small muted" },
            `Organization ${view.organization.management_account_id}: last listed ${formatTime(view.organization.last_listing.finished_at)}` +
              (view.organization.last_listing.status === "failed" ? ` (failed: ${view.organization.last_listing.error})` : ""),
          )
        : null,
    );
    table.setRows(view.accounts);
  }

  /** The coverage matrix, account x region: each cell says what is there, or why nothing is, with the fix. */
  function coverageMatrix(coverage) {
    const MAX_ROWS = 200;
    const rows = coverage.accounts.slice(0, MAX_ROWS);
    const cell = (entry) => {
      const counts = entry.instances;
      const what =
        entry.status === "covered" || entry.status === "install_failed" || entry.status === "not_managed"
          ? `${counts.installed} of ${counts.discovered} instance${counts.discovered === 1 ? "" : "s"} with the agent; ${counts.managed} managed`
          : null;
      return h(
        "td",
        { className: `coverage-cell coverage-${entry.status}` },
        badge(entry.status),
        what ? h("div", { className: "small" }, what) : null,
        entry.reason
          ? h("div", { className: "small" }, entry.reason, entry.fix ? h("span", { className: "muted" }, ` Fix: ${entry.fix}`) : null)
          : null,
      );
    };
    const totals = coverage.totals;
    return [
      h("h2", { id: "coverage-title" }, "Coverage: account × region"),
      h(
        "p",
        { className: "small muted" },
        `${totals.installed} of ${totals.discovered} instances have the agent across ${totals.accounts} account${totals.accounts === 1 ? "" : "s"}; ` +
          `${totals.covered_cells} of ${totals.cells} account-regions covered or empty.`,
      ),
      h(
        "div",
        { className: "table-scroll static", tabindex: "0", role: "region", "aria-labelledby": "coverage-title" },
        h(
          "table",
          { className: "coverage-matrix" },
          h("caption", { className: "visually-hidden" }, "Coverage of each account in each region"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Account"),
              coverage.regions.map((region) => h("th", { scope: "col" }, region)),
            ),
          ),
          h(
            "tbody",
            {},
            rows.map((row) =>
              h(
                "tr",
                {},
                h("th", { scope: "row" }, row.name ?? row.account_id, row.name ? h("div", { className: "muted small" }, row.account_id) : null),
                row.cells.map(cell),
              ),
            ),
          ),
        ),
      ),
      coverage.accounts.length > MAX_ROWS
        ? h(
            "p",
            { className: "small muted" },
            `The first ${MAX_ROWS} of ${coverage.accounts.length} accounts; GET ${path("/coverage")} answers with all.`,
          )
        : null,
    ];
  }

  // Assets -----------------------------------------------------------------------------------------------------
  let assetsTable;
  async function renderAssets(refresh) {
    const token = state.viewToken;
    if (!refresh || !assetsTable) {
      assetsTable = dataTable({
        caption: "Discovered assets",
        rowKey: (row) => row.asset_id,
        search: (row) => `${row.name ?? ""} ${row.asset_id} ${row.region} ${row.platform ?? ""}`,
        initialSort: { key: "priority", dir: "asc" },
        columns: [
          {
            key: "name",
            label: "Asset",
            sortValue: (row) => row.name ?? row.asset_id,
            render: (row) => h("span", {}, row.name ?? row.asset_id, row.name ? h("span", { className: "muted small" }, ` ${row.asset_id}`) : null),
          },
          { key: "asset_type", label: "Type" },
          { key: "priority", label: "Priority", sortValue: (row) => PRIORITIES.indexOf(row.priority), render: (row) => badge(row.priority) },
          { key: "platform", label: "Platform" },
          { key: "region", label: "Region" },
          { key: "agent_status", label: "Agent", render: (row) => badge(row.agent_status) },
          { key: "reason", label: "Reason", render: (row) => row.reason ?? "–" },
        ],
        filters: [
          { key: "priority", label: "Priority", options: PRIORITIES },
          { key: "asset_type", label: "Type", options: ["ec2", "rds", "eks"] },
          { key: "agent_status", label: "Agent", options: AGENT_STATUSES },
        ],
        emptyText: "No assets discovered yet.",
      });
      screen("Assets", h("p", { className: "muted" }, "Everything discovered in your account, highest priority first."), assetsTable.element);
    }
    const [assets, deployment] = await Promise.all([
      apiAllPages(path("/assets"), "assets"),
      api("GET", path("/deployment?refresh=false")).catch(() => ({ instances: [] })),
    ]);
    if (token !== state.viewToken) return;
    const byId = new Map(deployment.instances.map((instance) => [instance.asset_id, instance]));
    assetsTable.setRows(
      assets.map((asset) => {
        const instance = byId.get(asset.asset_id);
        return {
          ...asset,
          platform: instance?.platform ?? asset.data?.platform ?? asset.data?.engine ?? null,
          reason: instance?.reason ?? null,
        };
      }),
    );
  }

  // Deployment -------------------------------------------------------------------------------------------------
  const retryResult = h("div", { id: "retry-result", role: "status" });
  async function renderDeployment(fromProgress) {
    const token = state.viewToken;
    const summaryBox = h("div", { id: "deployment-summary" }, h("p", { className: "muted" }, "Reading the rollout from AWS…"));
    const instances = dataTable({
      caption: "Instances and their agent",
      rowKey: (row) => row.asset_id,
      search: (row) => `${row.name ?? ""} ${row.asset_id} ${row.region}`,
      initialSort: { key: "agent_status", dir: "asc" },
      columns: [
        {
          key: "name",
          label: "Instance",
          sortValue: (row) => row.name ?? row.asset_id,
          render: (row) => instanceLabel(row),
        },
        { key: "priority", label: "Priority", sortValue: (row) => PRIORITIES.indexOf(row.priority), render: (row) => badge(row.priority) },
        { key: "platform", label: "Platform" },
        { key: "region", label: "Region" },
        { key: "agent_status", label: "Agent", render: (row) => badge(row.agent_status) },
        {
          key: "reason",
          label: "Reason",
          render: (row) =>
            row.failure ? [row.failure.reason, h("br"), h("span", { className: "small" }, h("strong", {}, "Fix: "), row.failure.fix)] : row.reason,
        },
      ],
      filters: [{ key: "agent_status", label: "Agent", options: AGENT_STATUSES }],
      emptyText: "No instances yet.",
    });
    if (!fromProgress) replace(retryResult);
    screen("Deployment", summaryBox, retryResult, instances.element);
    let summary;
    try {
      summary = await api("GET", path(`/deployment?refresh=${fromProgress ? "false" : "true"}`));
    } catch (error) {
      replace(summaryBox, h("p", { className: "error" }, error.message));
      return;
    }
    if (token !== state.viewToken) return;
    const retryButton = h(
      "button",
      { type: "button", id: "retry-failed", disabled: summary.failed === 0, onclick: () => retryFailed() },
      `Retry failed instances (${summary.failed})`,
    );
    replace(
      summaryBox,
      h(
        "dl",
        { className: "stats" },
        [
          ["Targeted", summary.targeted],
          ["Installed", summary.installed],
          ["Checked in", summary.checked_in],
          ["Failed", summary.failed],
          ["Pending", summary.pending],
          ["Not compatible", summary.not_compatible],
        ].map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, String(value)))),
      ),
      h("p", { className: "small muted" }, `Last read from AWS: ${formatTime(summary.last_checked_at)}`),
      summary.refresh_error ? h("p", { className: "error" }, `Could not read the rollout from AWS: ${summary.refresh_error}`) : null,
      h(
        "div",
        { className: "actions" },
        retryButton,
        h("button", { type: "button", className: "secondary", onclick: () => show("deployment") }, "Read again from AWS"),
      ),
    );
    instances.setRows(summary.instances.map((instance) => ({ ...instance, platform: instance.platform ?? "–", reason: instance.reason ?? "–" })));
  }

  async function retryFailed() {
    try {
      const result = await api("POST", path("/deployment/retry"));
      const message =
        result.retried === 0 ? "No failed instance to retry." : `Retry sent to ${result.retried} instance${result.retried === 1 ? "" : "s"}.`;
      replace(retryResult, h("p", { className: "notice" }, message));
      announce(message);
    } catch (error) {
      replace(retryResult, h("p", { className: "error" }, `Retry failed: ${error.message}`));
      announce(`Retry failed: ${error.message}`);
    }
    if (state.view === "deployment") void renderDeployment(true);
    else show("deployment");
  }

  // Validation -------------------------------------------------------------------------------------------------
  async function renderValidation() {
    const token = state.viewToken;
    const list = h("ul", { className: "checks" }, h("li", { className: "muted" }, "Checking…"));
    screen("Validation", list);
    const validation = await api("GET", path("/validation")).catch((error) => ({ error }));
    if (token !== state.viewToken) return;
    if (validation.error) return replace(list, h("li", { className: "error" }, validation.error.message));
    replace(
      list,
      validation.checks.map((check) =>
        h(
          "li",
          { className: `check check-${check.status}`, "data-check": check.name },
          h("p", {}, badge(check.status), " ", h("strong", {}, label(check.name))),
          check.reason ? h("p", {}, check.reason) : null,
          check.status === "passed" ? null : h("p", { className: "small" }, h("strong", {}, "How to fix: "), CHECK_FIXES[check.name]),
        ),
      ),
    );
    list.before(h("p", {}, `${validation.passed} of ${validation.total} checks passed.`));
  }

  // Settings ---------------------------------------------------------------------------------------------------
  async function renderSettings() {
    const token = state.viewToken;
    const [tenant, aws, progress] = await Promise.all([api("GET", path()), loadAws().catch(() => null), Promise.resolve(state.progress)]);
    if (token !== state.viewToken) return;
    const settings = tenant.integration_settings;
    const message = h("div", { role: "status", id: "settings-message" });
    const field = (id, text, input, hint) =>
      h(
        "div",
        { className: "field" },
        h("label", { for: id }, text),
        input,
        hint ? h("p", { className: "small muted", id: `${id}-hint` }, hint) : null,
      );
    const regions = h("input", {
      id: "set-regions",
      type: "text",
      value: (settings.regions ?? []).join(", "),
      "aria-describedby": "set-regions-hint",
    });
    const tagKey = h("input", { id: "set-tag-key", type: "text", value: settings.target_tag?.key ?? "" });
    const tagValue = h("input", { id: "set-tag-value", type: "text", value: settings.target_tag?.value ?? "" });
    const allManaged = h("input", { id: "set-all-managed", type: "checkbox", checked: settings.target_all_managed_instances ?? false });
    const autoDiscovery = h("input", { id: "set-auto-discovery", type: "checkbox", checked: tenant.auto_discovery_enabled });
    const approval = h("input", {
      id: "set-approval",
      type: "checkbox",
      checked: settings.require_approval ?? false,
      disabled: session.scope !== "platform_admin",
      "aria-describedby": "set-approval-hint",
    });
    const form = h(
      "form",
      { className: "settings", novalidate: true },
      h(
        "fieldset",
        { disabled: session.role === "viewer" },
        h("legend", {}, "Regions and targeting"),
        field("set-regions", "Regions", regions, "Comma-separated, e.g. us-east-1, eu-west-1. The home region must be one of them."),
        h("div", { className: "field-row" }, field("set-tag-key", "Target tag key", tagKey), field("set-tag-value", "Target tag value", tagValue)),
        h(
          "div",
          { className: "check-field" },
          allManaged,
          h("label", { for: "set-all-managed" }, "Install the agent on every SSM-managed instance (ignore the target tag)"),
        ),
      ),
      h(
        "fieldset",
        { disabled: session.role === "viewer" },
        h("legend", {}, "Automation and approval"),
        h("div", { className: "check-field" }, autoDiscovery, h("label", { for: "set-auto-discovery" }, "Discover new assets automatically")),
        h("div", { className: "check-field" }, approval, h("label", { for: "set-approval" }, "Require approval before deployment")),
        h("p", { className: "small muted", id: "set-approval-hint" }, "Only a platform operator may change the approval gate."),
      ),
      message,
      h("button", { type: "submit", "data-admin-only": true }, "Save settings"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const patch = {
        auto_discovery_enabled: autoDiscovery.checked,
        integration_settings: {
          regions: regions.value.split(/[\s,]+/).filter(Boolean),
          target_tag: tagKey.value.trim() ? { key: tagKey.value.trim(), value: tagValue.value.trim() } : null,
          target_all_managed_instances: allManaged.checked,
          ...(session.scope === "platform_admin" ? { require_approval: approval.checked } : {}),
        },
      };
      try {
        await api("PATCH", path(), patch);
        replace(message, h("p", { className: "notice" }, "Settings saved."));
        announce("Settings saved");
      } catch (error) {
        const fields = error.fields?.map((problem) => `${problem.field} ${problem.message}`).join("; ");
        replace(message, h("p", { className: "error" }, fields ? `Not saved: ${fields}` : `Not saved: ${error.message}`));
      }
    });

    const integrationCard = h(
      "section",
      { className: "card", "aria-labelledby": "integration-title" },
      h("h2", { id: "integration-title" }, "Amazon Web Services"),
      aws
        ? [
            h("p", {}, badge(aws.status === "active" ? "connected" : aws.status === "invalid" ? "error" : "disconnected")),
            h(
              "p",
              {},
              `Configured ${formatTime(aws.configured_at)} · account ${aws.aws_account_id} · ${progress?.discovery.assets_found ?? 0} assets`,
            ),
            h(
              "div",
              { className: "actions" },
              h("button", { type: "button", className: "secondary", "data-admin-only": true, onclick: () => show("quick-start") }, "Reconfigure"),
              h("button", { type: "button", className: "danger", "data-admin-only": true, onclick: () => disconnect() }, "Disconnect"),
            ),
          ]
        : [
            h("p", {}, badge("disconnected")),
            h("button", { type: "button", "data-admin-only": true, onclick: () => show("quick-start") }, "Connect AWS"),
          ],
    );
    const versionBox = h("div", { id: "bootstrap-version" });
    if (aws) integrationCard.append(versionBox);
    screen("Settings", integrationCard, permissionsCard(), h("section", { className: "card", "aria-label": "Integration settings" }, form));
    if (aws) void renderBootstrapVersion(versionBox, token);
  }

  /** GET .../bootstrap/version: which template version the bootstrap role runs, and the update when there is one. */
  async function renderBootstrapVersion(box, token) {
    const version = await api("GET", path("/integrations/aws/bootstrap/version")).catch(() => null);
    if (!version || token !== state.viewToken) return;
    if (!version.update_available) {
      replace(box, h("p", { className: "small muted" }, `Bootstrap template version ${version.running_version} (current).`));
      return;
    }
    const change = (entry, sign) =>
      h("li", {}, h("code", {}, `${sign} ${entry.action}`), ` (${entry.policy === "role" ? "bootstrap role" : "boundary"}, ${entry.statement})`);
    replace(
      box,
      h(
        "section",
        { className: "problem", "aria-labelledby": "bootstrap-update-title" },
        h("h3", { id: "bootstrap-update-title" }, "Bootstrap update available"),
        h(
          "p",
          {},
          version.running_version
            ? `Your bootstrap stack runs version ${version.running_version}; the current version is ${version.current_version}.`
            : `Your bootstrap stack predates versioned templates; the current version is ${version.current_version}.`,
        ),
        version.changes
          ? h(
              "ul",
              { className: "policy-changes" },
              version.changes.added.map((entry) => change(entry, "+")),
              version.changes.removed.map((entry) => change(entry, "−")),
            )
          : null,
        version.held_runs.map((run) => h("p", {}, h("strong", {}, "Waiting: "), `the up ${run.reason}.`)),
        h(
          "p",
          {},
          h(
            "a",
            { href: version.update.console_url, target: "_blank", rel: "noopener noreferrer", className: "button" },
            "Update the bootstrap stack",
          ),
        ),
        h("p", { className: "small" }, "Or with the AWS CLI: ", h("code", {}, version.update.cli_command)),
      ),
    );
  }

  /** POST .../permissions/check: each read-only call the platform needs, tried once per region, as a matrix. */
  function permissionsCard() {
    const result = h("div", { role: "status", id: "permissions-result" });
    const check = h("button", { type: "button", className: "secondary", "data-admin-only": true }, "Check permissions");
    check.addEventListener("click", async () => {
      check.disabled = true;
      replace(result, h("p", { className: "muted" }, "Trying each call in each region…"));
      try {
        const { regions } = await api("POST", path("/permissions/check"));
        const actions = regions[0]?.checks.map((cell) => cell.action) ?? [];
        const problems = regions.flatMap((region) => region.checks.filter((cell) => cell.status !== "allowed"));
        replace(
          result,
          h(
            "div",
            { className: "table-scroll static", tabindex: 0, role: "region", "aria-label": "Permissions per region, scrollable" },
            h(
              "table",
              { className: "permission-matrix" },
              h("caption", {}, "Permissions per region"),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", { scope: "col" }, "Region"),
                  actions.map((action) => h("th", { scope: "col" }, action)),
                ),
              ),
              h(
                "tbody",
                {},
                regions.map((region) =>
                  h(
                    "tr",
                    { "data-region": region.region },
                    h("th", { scope: "row" }, region.region, " ", badge(region.status)),
                    region.checks.map((cell) => h("td", { "data-status": cell.status }, cell.status)),
                  ),
                ),
              ),
            ),
          ),
          problems.length
            ? h(
                "ul",
                {},
                problems.map((cell) =>
                  h("li", {}, h("p", {}, cell.reason), h("p", { className: "small" }, h("strong", {}, "How to fix: "), cell.fix)),
                ),
              )
            : h("p", {}, "Every call the platform needs is allowed in every region."),
        );
        announce("Permission check done");
      } catch (error) {
        replace(result, h("p", { className: "error" }, `The check did not run: ${error.message}`));
      } finally {
        check.disabled = false;
      }
    });
    return h(
      "section",
      { className: "card", "aria-labelledby": "permissions-title" },
      h("h2", { id: "permissions-title" }, "Permissions"),
      h("p", { className: "small muted" }, "Tries each read-only call Mini-XDR makes in your account, once per region, and shows what AWS answers."),
      h("div", { className: "actions" }, check),
      result,
    );
  }

  async function renderMembers() {
    const token = state.viewToken;
    const admin = session.role !== "viewer";
    const membersBox = h("section", { className: "card", "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, "Members"));
    const tokensBox = h("section", { className: "card", "aria-labelledby": "tokens-title" }, h("h2", { id: "tokens-title" }, "API tokens"));
    const invite = h(
      "button",
      { type: "button", id: "invite-member", "data-admin-only": true, onclick: () => void inviteColleague() },
      "Invite a colleague…",
    );
    screen("Members", h("div", { className: "actions" }, invite), membersBox, tokensBox, activityCard(path()));
    const [{ members, invitations }, { tokens }] = await Promise.all([api("GET", path("/members")), api("GET", path("/tokens?limit=200"))]);
    if (token !== state.viewToken) return;
    const removeButton = (text, onclick) =>
      admin ? h("button", { type: "button", className: "secondary", "data-admin-only": true, onclick }, text) : null;
    membersBox.append(
      staticTable(
        "Members",
        ["Person", "Role", "Signs in with", "Last sign-in", admin ? "Actions" : ""],
        members.map((member) =>
          h(
            "tr",
            {},
            h("td", {}, member.name ? `${member.name} (${member.email ?? "no email"})` : (member.email ?? `person ${member.person_id}`)),
            h("td", {}, badge(member.role)),
            h("td", {}, member.signs_in_with === "link" ? "invitation link" : "identity provider"),
            h("td", {}, formatTime(member.last_sign_in_at)),
            h(
              "td",
              {},
              removeButton(`Remove ${member.email ?? member.person_id}`, () => void removeMember(member)),
            ),
          ),
        ),
      ),
      invitations.length === 0
        ? h("p", { className: "muted" }, "No invitations waiting.")
        : h(
            "div",
            {},
            h("h3", {}, "Invitations waiting"),
            staticTable(
              "Invitations waiting",
              ["Email", "Role", "Invited by", "Expires", admin ? "Actions" : ""],
              invitations.map((invitation) =>
                h(
                  "tr",
                  {},
                  h("td", {}, invitation.email),
                  h("td", {}, badge(invitation.role)),
                  h("td", {}, invitation.invited_by),
                  h("td", {}, formatTime(invitation.expires_at)),
                  h(
                    "td",
                    {},
                    removeButton(`Withdraw ${invitation.email}`, () => void withdraw(invitation)),
                  ),
                ),
              ),
            ),
          ),
    );
    tokensBox.append(
      h("p", { className: "small muted" }, "Tokens let automation call the API. They are created by the platform operator and shown once."),
      tokens.length === 0
        ? h("p", { className: "muted" }, "No API tokens.")
        : staticTable(
            "API tokens",
            ["Name", "Status", "Created", "Last used", admin ? "Actions" : ""],
            tokens.map((apiToken) =>
              h(
                "tr",
                {},
                h("td", {}, apiToken.name),
                h("td", {}, badge(apiToken.status)),
                h("td", {}, formatTime(apiToken.created_at)),
                h("td", {}, formatTime(apiToken.last_used_at)),
                h("td", {}, apiToken.status === "active" ? removeButton(`Revoke ${apiToken.name}`, () => void revoke(apiToken)) : null),
              ),
            ),
          ),
    );
  }

  async function inviteColleague() {
    const done = await inviteDialog({ title: "Invite a colleague", path: path("/invitations"), defaultRole: "viewer" });
    if (done) show("members");
  }

  async function removeMember(member) {
    const who = member.email ?? `person ${member.person_id}`;
    const ok = await confirmDialog({
      title: `Remove ${who}?`,
      body: h("p", {}, "They lose access to this tenant at once: every session they have open ends."),
      confirmLabel: "Remove",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", path(`/members/${member.person_id}`));
      announce(`${who} removed`);
    } catch (error) {
      announce(`Could not remove ${who}: ${error.message}`);
    }
    show("members");
  }

  async function withdraw(invitation) {
    try {
      await api("DELETE", path(`/invitations/${invitation.id}`));
      announce(`Invitation to ${invitation.email} withdrawn`);
    } catch (error) {
      announce(`Could not withdraw it: ${error.message}`);
    }
    show("members");
  }

  async function revoke(apiToken) {
    const ok = await confirmDialog({
      title: `Revoke ${apiToken.name}?`,
      body: h("p", {}, "Automation using this token is refused from now on."),
      confirmLabel: "Revoke",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", path(`/tokens/${apiToken.id}`));
      announce(`${apiToken.name} revoked`);
    } catch (error) {
      announce(`Could not revoke it: ${error.message}`);
    }
    show("members");
  }

  async function disconnect() {
    const ok = await confirmDialog({
      title: "Disconnect AWS?",
      body: h("p", {}, "Mini-XDR stops reading your account. Agents already installed keep running until you offboard."),
      confirmLabel: "Disconnect",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", path("/integrations/aws"));
      announce("AWS disconnected");
    } catch (error) {
      announce(`Could not disconnect: ${error.message}`);
    }
    show("settings");
  }

  show("quick-start");
  return () => {
    streams.abort();
    clearTimeout(state.waitTimer);
  };
}
