// Small DOM helpers for the console: element builder, formatting, screen-reader announcements.

/**
 * h("button", { type: "button", onclick: fn, "aria-label": "x" }, "text", child)
 * Attributes starting with "on" become listeners; false/null/undefined attributes are left out; children may be
 * strings, nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "className") el.className = value;
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = Boolean(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick makes screen readers read a repeated message again.
  setTimeout(() => (region.textContent = message), 50);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export const label = (value) => String(value ?? "").replaceAll("_", " ");

export function badge(status) {
  return h("span", { className: `badge badge-${String(status).replace(/[^a-z_]/g, "")}` }, label(status));
}

/** A modal confirmation (native <dialog>: focus is trapped and Escape cancels). Resolves true on confirm. */
export function confirmDialog({ title, body, confirmLabel, danger = false, requireText }) {
  return new Promise((resolve) => {
    const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
    const input = requireText ? h("input", { id: `${titleId}-input`, type: "text", autocomplete: "off", spellcheck: "false" }) : null;
    const confirm = h("button", { type: "submit", className: danger ? "danger" : "", disabled: Boolean(requireText) }, confirmLabel);
    const cancel = h("button", { type: "button", className: "secondary", onclick: () => dialog.close("cancel") }, "Cancel");
    if (input) input.addEventListener("input", () => (confirm.disabled = input.value.trim() !== requireText));
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", { id: titleId }, title),
      body,
      input ? [h("label", { for: input.id }, `Type ${requireText} to confirm`), input] : null,
      h("div", { className: "actions" }, cancel, confirm),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!confirm.disabled) dialog.close("confirm");
    });
    const dialog = h("dialog", { "aria-labelledby": titleId }, form);
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
    (input ?? cancel).focus();
  });
}
