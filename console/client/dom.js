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

/**
 * A modal form (native <dialog>). `fields`: [{ name, label, type = "text" | "email" | "select", options, hint, value,
 * path }] (`path`: the field as the API names it in errors, default `name`; an empty optional field is left out).
 * `submit(values)` makes the call: an ApiError's field errors are shown under their fields and the dialog stays open;
 * what it resolves to (a node, or nothing) replaces the form's fields as the result, with a Close button.
 * Resolves with that result, or null when cancelled.
 */
export function formDialog({ title, fields, submitLabel, submit }) {
  return new Promise((resolve) => {
    const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
    const inputs = fields.map((field) => {
      const id = `${titleId}-${field.name}`;
      const errorId = `${id}-error`;
      const control =
        field.type === "select"
          ? h(
              "select",
              { id, name: field.name },
              field.options.map(([value, text]) => h("option", { value, selected: value === field.value }, text)),
            )
          : h("input", {
              id,
              name: field.name,
              type: field.type ?? "text",
              required: !field.optional,
              autocomplete: "off",
              spellcheck: "false",
              value: field.value,
              "aria-describedby": `${field.hint ? `${id}-hint ` : ""}${errorId}`,
            });
      const error = h("p", { className: "error", id: errorId });
      return {
        field,
        control,
        error,
        nodes: [
          h("label", { for: id }, field.label),
          field.hint ? h("p", { className: "small muted", id: `${id}-hint` }, field.hint) : null,
          control,
          error,
        ],
      };
    });
    const problem = h("p", { className: "error", role: "alert" });
    const confirm = h("button", { type: "submit" }, submitLabel);
    const cancel = h("button", { type: "button", className: "secondary", onclick: () => dialog.close() }, "Cancel");
    const body = h(
      "div",
      {},
      inputs.map((input) => input.nodes),
      problem,
    );
    const actions = h("div", { className: "actions" }, cancel, confirm);
    const form = h("form", { method: "dialog", novalidate: true }, h("h2", { id: titleId }, title), body, actions);
    let result = null;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (result !== null) return dialog.close();
      for (const input of inputs) input.error.textContent = "";
      problem.textContent = "";
      confirm.disabled = true;
      try {
        const values = Object.fromEntries(
          inputs.filter((input) => input.control.value.trim() !== "").map((input) => [input.field.name, input.control.value.trim()]),
        );
        result = (await submit(values)) ?? h("p", {}, "Done.");
        replace(body, result);
        replace(actions, h("button", { type: "submit" }, "Close"));
        actions.querySelector("button").focus();
      } catch (error) {
        const pathOf = (input) => input.field.path ?? input.field.name;
        const named = (error.fields ?? []).filter((problemField) => inputs.some((input) => problemField.field === pathOf(input)));
        for (const problemField of named) {
          const input = inputs.find((candidate) => problemField.field === pathOf(candidate));
          input.error.textContent = problemField.message;
          input.control.setAttribute("aria-invalid", "true");
        }
        if (named.length === 0) problem.textContent = error.message;
        (named.length > 0 ? inputs.find((input) => input.error.textContent).control : confirm).focus();
      } finally {
        confirm.disabled = false;
      }
    });
    const dialog = h("dialog", { "aria-labelledby": titleId }, form);
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    (inputs[0]?.control ?? confirm).focus();
  });
}

/** A table that scrolls sideways in a focusable region: a caption (for screen readers), column headings, row nodes. */
export function staticTable(caption, headings, rows) {
  return h(
    "div",
    { className: "table-scroll static", tabindex: 0, role: "region", "aria-label": `${caption}, scrollable` },
    h(
      "table",
      {},
      h("caption", { className: "visually-hidden" }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headings.map((heading) => h("th", { scope: "col" }, heading)),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}
