// A tenant's recent activity (its audit trail): what was done, when, and by whom, as the tenant's Members page and the
// operator's tenant page show it.
import { api } from "./api.js";
import { formatTime, h, label, replace, staticTable } from "./dom.js";

const who = (entry) =>
  entry.actor_name
    ? `${entry.actor_name}${entry.actor_issuer && entry.actor_issuer !== "link" ? ` (${entry.actor_subject} at ${entry.actor_issuer})` : ""}`
    : entry.actor.startsWith("system:")
      ? `Mini-XDR (${label(entry.actor.slice("system:".length))})`
      : entry.actor;

/** A card that fills itself with the last `limit` actions of the tenant at `path` (its /v1/tenants/{slug} path). */
export function activityCard(path, limit = 20) {
  const card = h(
    "section",
    { className: "card", "aria-labelledby": "activity-title", id: "activity" },
    h("h2", { id: "activity-title" }, "Recent activity"),
    h("p", { className: "muted" }, "Loading…"),
  );
  void api("GET", `${path}/activity?limit=${limit}`)
    .then(({ activity }) =>
      replace(
        card,
        h("h2", { id: "activity-title" }, "Recent activity"),
        activity.length === 0
          ? h("p", { className: "muted" }, "Nothing yet.")
          : staticTable(
              "Recent activity",
              ["When", "What", "On", "Who"],
              activity.map((entry) =>
                h(
                  "tr",
                  {},
                  h("td", {}, formatTime(entry.at)),
                  h("td", {}, label(entry.action)),
                  h("td", {}, entry.target ?? "–"),
                  h("td", {}, who(entry)),
                ),
              ),
            ),
      ),
    )
    .catch((error) => replace(card, h("h2", { id: "activity-title" }, "Recent activity"), h("p", { className: "error" }, error.message)));
  return card;
}
