// A sortable, filterable table that renders only the rows in view (plus a margin), so 10,000 rows cost what ~40 do.
// It is a real <table> (aria-rowcount / aria-rowindex tell screen readers where they are), in a scrolling region
// that takes keyboard focus; the column headers are sort buttons with aria-sort.
import { h, replace } from "./dom.js";

const ROW_HEIGHT = 36;
const OVERSCAN = 10;

let tableCount = 0;

/**
 * columns: [{ key, label, sortValue?(row), render?(row) }]
 * filters: [{ key, label, options: [value...], value?(row) }]  (exact match selects)
 * search: (row) => string to match the search box against
 */
export function dataTable({ caption, columns, filters = [], search, rowKey, initialSort, emptyText = "Nothing to show." }) {
  const id = `table-${++tableCount}`;
  let rows = [];
  let view = [];
  let sort = initialSort ?? { key: columns[0].key, dir: "asc" };
  const filterValues = Object.fromEntries(filters.map((filter) => [filter.key, ""]));
  let query = "";

  const count = h("p", { className: "table-count", "aria-live": "polite", id: `${id}-count` });
  const searchInput = search
    ? h("input", {
        type: "search",
        id: `${id}-search`,
        placeholder: "Filter…",
        oninput: (event) => {
          query = event.target.value.trim().toLowerCase();
          refresh();
        },
      })
    : null;
  const filterControls = filters.map((filter) => {
    const select = h(
      "select",
      {
        id: `${id}-filter-${filter.key}`,
        onchange: (event) => {
          filterValues[filter.key] = event.target.value;
          refresh();
        },
      },
      h("option", { value: "" }, "All"),
      filter.options.map((option) => h("option", { value: option }, String(option).replaceAll("_", " "))),
    );
    return h("div", { className: "field-inline" }, h("label", { for: select.id }, filter.label), select);
  });
  const tools = h(
    "div",
    { className: "table-tools" },
    searchInput ? h("div", { className: "field-inline" }, h("label", { for: searchInput.id }, "Search"), searchInput) : null,
    filterControls,
    count,
  );

  const headerCells = columns.map((column) =>
    h(
      "th",
      { scope: "col", "data-key": column.key },
      h(
        "button",
        { type: "button", className: "sort", onclick: () => toggleSort(column.key) },
        column.label,
        h("span", { "aria-hidden": "true", className: "sort-mark" }),
      ),
    ),
  );
  const tbody = h("tbody");
  const table = h(
    "table",
    { "aria-rowcount": 1 },
    h("caption", { className: "visually-hidden" }, caption),
    h("thead", {}, h("tr", { "aria-rowindex": 1 }, headerCells)),
    tbody,
  );
  const scroller = h("div", { className: "table-scroll", tabindex: 0, role: "region", "aria-label": `${caption}, scrollable` }, table);
  scroller.addEventListener("scroll", () => scheduleRender(), { passive: true });
  const element = h("div", { className: "data-table" }, tools, scroller);

  function toggleSort(key) {
    sort = sort.key === key ? { key, dir: sort.dir === "asc" ? "desc" : "asc" } : { key, dir: "asc" };
    refresh();
  }

  function refresh() {
    const column = columns.find((candidate) => candidate.key === sort.key) ?? columns[0];
    const sortValueOf = column.sortValue ?? ((row) => row[column.key]);
    const factor = sort.dir === "asc" ? 1 : -1;
    view = rows.filter((row) => {
      for (const filter of filters) {
        const wanted = filterValues[filter.key];
        if (wanted && String((filter.value ?? ((r) => r[filter.key]))(row)) !== wanted) return false;
      }
      return !query || search(row).toLowerCase().includes(query);
    });
    view.sort((a, b) => {
      const x = sortValueOf(a);
      const y = sortValueOf(b);
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x ?? "").localeCompare(String(y ?? ""))) * factor;
    });
    for (const cell of headerCells) {
      const active = cell.dataset.key === sort.key;
      if (active) cell.setAttribute("aria-sort", sort.dir === "asc" ? "ascending" : "descending");
      else cell.removeAttribute("aria-sort");
      cell.querySelector(".sort-mark").textContent = active ? (sort.dir === "asc" ? " ▲" : " ▼") : "";
    }
    table.setAttribute("aria-rowcount", String(view.length + 1));
    count.textContent = view.length === rows.length ? `${rows.length} rows` : `${view.length} of ${rows.length} rows`;
    lastWindow = "";
    render();
  }

  let pending = false;
  let lastWindow = "";
  function scheduleRender() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  }

  function render() {
    const headerHeight = table.tHead?.offsetHeight ?? ROW_HEIGHT;
    const visible = Math.ceil((scroller.clientHeight || 480) / ROW_HEIGHT);
    const first = Math.max(0, Math.floor(Math.max(0, scroller.scrollTop - headerHeight) / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(view.length, first + visible + OVERSCAN * 2);
    const key = `${first}:${last}:${view.length}`;
    if (key === lastWindow) return;
    lastWindow = key;
    if (view.length === 0) {
      replace(tbody, h("tr", {}, h("td", { colspan: columns.length, className: "empty" }, emptyText)));
      return;
    }
    const spacer = (height) => {
      if (height <= 0) return null;
      const cell = h("td", { colspan: columns.length });
      // CSSOM, not a style attribute: the CSP allows no inline styles.
      cell.style.height = `${height}px`;
      return h("tr", { "aria-hidden": "true", className: "spacer" }, cell);
    };
    const body = [];
    for (let index = first; index < last; index++) {
      const row = view[index];
      body.push(
        h(
          "tr",
          { "aria-rowindex": index + 2, "data-row-key": rowKey(row) },
          columns.map((column) => h("td", {}, column.render ? column.render(row) : String(row[column.key] ?? "–"))),
        ),
      );
    }
    replace(tbody, spacer(first * ROW_HEIGHT), body, spacer((view.length - last) * ROW_HEIGHT));
  }

  return {
    element,
    setRows(next) {
      rows = next;
      refresh();
    },
    get shown() {
      return view.length;
    },
  };
}
