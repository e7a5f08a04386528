// Inviting someone to a tenant (the operator's Invite dialog, a tenant admin's Invite a colleague): the dialog, and
// its answer as a person reads it.
import { api } from "./api.js";
import { formatTime, formDialog, h } from "./dom.js";

const ROLES = {
  admin: ["admin", "Admin: connects AWS, changes settings, retries, manages members"],
  viewer: ["viewer", "Viewer: sees everything, changes nothing"],
};

/** Resolves with the dialog's result once someone was invited, null when cancelled. */
export function inviteDialog({ title, path, defaultRole }) {
  const other = defaultRole === "admin" ? "viewer" : "admin";
  return formDialog({
    title,
    submitLabel: "Send invitation",
    fields: [
      { name: "email", label: "Email", type: "email" },
      { name: "role", label: "Role", type: "select", value: defaultRole, options: [ROLES[defaultRole], ROLES[other]] },
    ],
    submit: async (values) => invitationResult(await api("POST", path, values)),
  });
}

/** An invitation's answer as a person reads it: mailed, or its link shown this once to copy. */
function invitationResult(invitation) {
  if (!invitation.link)
    return h("p", { role: "status" }, `Invitation mailed to ${invitation.email}. The link works once, until ${formatTime(invitation.expires_at)}.`);
  return h(
    "div",
    { role: "status" },
    h(
      "p",
      {},
      `No mail server is configured: send this link to ${invitation.email} yourself. It is shown only now, works once, until ${formatTime(invitation.expires_at)}.`,
    ),
    h("label", { for: "invitation-link" }, "Invitation link"),
    h("input", { id: "invitation-link", type: "text", readonly: true, value: invitation.link, onfocus: (event) => event.target.select() }),
  );
}
