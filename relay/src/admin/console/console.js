// The relay's web console: the main window (switches, sessions, licence, monitors, live
// notifications) and its dialogs, over the admin API of the same origin.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { status: null, config: null, lastSeq: 0, notificationLines: 500 };

// ---- The admin API ----------------------------------------------------------------------

// The address `relay run` prints carries the token in its fragment (#token=…), which the
// browser never sends: keep it for this tab, and take it out of the address bar.
(function tokenFromAddress() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) {
    sessionStorage.setItem("relay-token", token);
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function authHeaders() {
  const token = sessionStorage.getItem("relay-token");
  return token ? { Authorization: "Bearer " + token } : {};
}

let asking = null;
function askToken() {
  if (!asking) {
    asking = new Promise((resolve) => {
      const dialog = $("token-dialog");
      $("token-form").onsubmit = () => {
        sessionStorage.setItem("relay-token", $("token").value);
        asking = null;
        resolve();
      };
      dialog.showModal();
    });
  }
  return asking;
}

// Calls the API; answers { ok, status, body } with the body parsed when it is JSON.
async function api(method, path, body) {
  for (;;) {
    const init = { method, headers: authHeaders() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      return { ok: false, status: 0, body: { error: "the relay cannot be reached: " + e.message } };
    }
    if (res.status === 401) {
      await askToken();
      continue;
    }
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = { error: text }; }
    return { ok: res.ok, status: res.status, body: parsed };
  }
}

// One line per error, each with the field it concerns.
function errorLines(body) {
  if (!body) return ["the relay gave no reason"];
  if (Array.isArray(body.errors) && body.errors.length) {
    return body.errors.map((e) => e.message + (e.field ? " (" + e.field + ")" : ""));
  }
  return [(body.error || "refused") + (body.field ? " (" + body.field + ")" : "")];
}

function errorFields(body) {
  if (!body) return [];
  const list = Array.isArray(body.errors) ? body.errors.map((e) => e.field) : [body.field];
  return list.filter(Boolean).map((f) => f.split(".").pop().replace(/\[\d+\]$/, ""));
}

function showBanner(text) {
  const b = $("banner");
  b.textContent = text;
  b.hidden = !text;
}

// ---- Building DOM ----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: columns }, empty)));
}

const pad = (n) => String(n).padStart(2, "0");
function clock(ms) {
  const d = new Date(ms);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}
function since(ms) {
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  return Math.floor(s / 3600) + " h " + (Math.floor(s / 60) % 60) + " min";
}

function confirmAction(text, yes) {
  return new Promise((resolve) => {
    const dialog = $("confirm-dialog");
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    const done = (answer) => { dialog.close(); resolve(answer); };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
    dialog.oncancel = () => resolve(false);
    dialog.showModal();
  });
}

async function act(method, path, what) {
  const r = await api(method, path);
  showBanner(r.ok ? "" : what + ": " + errorLines(r.body).join("; "));
  refresh();
  return r.ok;
}

// ---- The main window ---------------------------------------------------------------------

// The link column: what the switch's supervisor is doing, in words.
function linkText(sw) {
  switch (sw.link) {
    case "connecting": return "connecting (attempt " + sw.attempt + " of " + sw.attempts + ")";
    case "waiting": return "waiting to retry (" + sw.attempt + " of " + sw.attempts + " attempts made)";
    case "idle": return "not connected";
    default: return sw.link;
  }
}

function switchRow(sw) {
  const css = sw.link === "up" ? "link-up" : sw.link === "disabled" ? "link-disabled" : "link-down";
  const actions = el("td", { class: "actions" });
  const path = "/api/switches/" + sw.no + "/";
  const button = (action, label, danger) =>
    el("button", { type: "button", class: danger ? "danger" : "", onclick: () => act("POST", path + action, label + " switch " + sw.no) }, label);
  if (sw.link === "connecting") actions.append(button("abort", "Abort attempt"), button("disconnect", "Disconnect", true));
  if (sw.link === "waiting") actions.append(button("connect", "Connect"), button("disconnect", "Disconnect", true));
  if (sw.link === "idle") actions.append(button("connect", "Connect"));
  if (sw.link === "up") actions.append(button("disconnect", "Disconnect", true));
  return el("tr", { dataset: { switch: sw.no, link: sw.link } },
    el("td", {}, sw.no), el("td", {}, sw.name), el("td", {}, sw.port ? sw.address + ":" + sw.port : sw.address),
    el("td", { class: css + " link" }, linkText(sw)), el("td", {}, sw.model || "–"),
    el("td", {}, sw.sessions), el("td", {}, sw.requests_in_flight), actions);
}

async function closeSession(s) {
  const ok = await confirmAction("Close session " + s.id + " (" + s.product + " from " + s.address + ")? The application is told it was closed by the administrator.", "Close session");
  if (ok) act("DELETE", "/api/sessions/" + s.id, "Close session " + s.id);
}

function sessionRow(s, withDevices) {
  const cells = [
    el("td", {}, s.id), el("td", { class: "address" }, s.address), el("td", {}, s.port),
    el("td", { class: "product" }, s.product), el("td", {}, s.protocol), el("td", {}, s.switches.join(", ")),
  ];
  if (withDevices) cells.push(el("td", { class: "devices" }, s.state));
  cells.push(el("td", { title: new Date(s.connected_ms).toLocaleString() }, since(s.connected_ms)));
  cells.push(el("td", { class: "actions" }, el("button", { type: "button", class: "danger close-session", onclick: () => closeSession(s) }, "Close")));
  return el("tr", { dataset: { session: s.id, address: s.address } }, ...cells);
}

function busSummary(b) {
  const role = b.lease_held === null || b.lease_held === undefined ? ""
    : b.lease_held ? ", node " + b.node + " holds the lease" : ", node " + b.node + " on standby";
  return "site " + b.site + role + (b.connected ? "" : ", not connected to NATS");
}

function render(view) {
  const st = view.status;
  state.status = st;
  const l = st.licence;
  const standing = l.standing === "trial" ? "trial, day " + (l.trial_days_used + 1) + " of 30"
    : l.standing === "licensed" ? "licence " + l.serial : "no licence in force";
  $("summary").textContent =
    st.switches_connected + " of " + st.switches_enabled + " enabled switches connected (" + st.switches_configured + " configured) · " +
    st.sessions.length + " sessions · " + standing + " · " + l.licensed_in_use + "/" + l.access_limit + " licensed sessions" +
    (st.bus ? " · bus: " + busSummary(st.bus) : "");
  fill($("switches").tBodies[0], st.switches.map(switchRow), "No switch is configured: add one in the switch table.", 8);
  fill($("sessions").tBodies[0], st.sessions.map((s) => sessionRow(s, true)), "No application is connected.", 9);
  $("session-count").textContent = "(" + st.sessions.length + ")";

  $("licence-standing").textContent = licenceHeadline(l);
  const counted = l.products.map((p) => {
    const [use, limit] = productUse(p);
    return el("tr", {}, el("td", {}, p.name), el("td", {}, use), el("td", {}, limit));
  });
  counted.push(el("tr", { class: "total" }, el("th", {}, "Licensed sessions"), el("th", {}, l.licensed_in_use), el("th", {}, l.access_limit)));
  fill($("licence-use").tBodies[0], counted, "", 3);

  const m = view.monitors;
  const monitor = (port, attached) => (port ? "port " + port + ", " + attached + " attached" : "off");
  $("monitor-sw").textContent = monitor(m.ports.switch_messages, m.switch_messages);
  $("monitor-su").textContent = monitor(m.ports.smdr_ucd, m.smdr_ucd);
  $("monitor-export").textContent = monitor(m.ports.export, m.export);
  const sp = view.export_spool;
  if (sp) {
    $("monitor-spool").textContent = sp.pending + " waiting · " + sp.exported + " delivered" + (sp.dropped ? " · " + sp.dropped + " dropped" : "");
  }
  $("monitor-password").textContent = m.password ? "required" : "none";

  if ($("bypass-dialog").open) renderBypass();
  if ($("licence-dialog").open) renderLicenceDetails();
}

// A licence product {name, limit, in_use} as [use, limit] in words: counted products show use
// against their limit; flag products whether they are licensed and where they are active.
function productUse(p) {
  if (p.limit !== "yes" && p.limit !== "no") return [p.in_use, p.limit];
  if (p.limit === "no") return ["–", "not licensed"];
  return [p.in_use === "none" ? "not active" : "active on " + p.in_use, "licensed"];
}

function licenceHeadline(l) {
  if (l.standing === "licensed") return "Licence " + l.serial + (l.expires ? ", expires " + l.expires : "") + ".";
  if (l.standing === "trial") return "Trial: day " + (l.trial_days_used + 1) + " of 30, " + l.trial_days_left + " days left (started " + l.trial_started + ").";
  return "No licence in force: the trial has ended. Register a key in the licence dialog.";
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const r = await api("GET", "/api/status");
    if (r.ok) {
      render(r.body);
      if ($("banner").dataset.unreachable) { showBanner(""); delete $("banner").dataset.unreachable; }
    } else {
      showBanner(errorLines(r.body).join("; "));
      $("banner").dataset.unreachable = "1";
    }
  } finally {
    refreshing = false;
  }
}

// ---- Notifications -------------------------------------------------------------------------

function addNotification(n) {
  if (n.seq <= state.lastSeq) return;
  state.lastSeq = n.seq;
  const list = $("notifications");
  const text = (n.switch ? "SW" + n.switch + " " : "") + n.text;
  list.prepend(el("li", { class: n.level, dataset: { seq: n.seq } }, el("time", {}, clock(n.time_ms)), text));
  while (list.children.length > state.notificationLines) list.lastElementChild.remove();
}

async function followNotifications() {
  for (;;) {
    const r = await api("GET", "/api/notifications");
    if (r.ok) r.body.forEach(addNotification);
    try {
      const res = await fetch("/api/notifications/live", { headers: authHeaders() });
      if (res.status === 401) { await askToken(); continue; }
      if (!res.ok || !res.body) throw new Error("status " + res.status);
      $("live-state").textContent = "(live)";
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (data) addNotification(JSON.parse(data));
        }
      }
    } catch (_) {
      // The relay went away or restarted: follow again shortly.
    }
    $("live-state").textContent = "(reconnecting)";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- Configuration dialogs -------------------------------------------------------------------

async function loadConfig() {
  const r = await api("GET", "/api/config");
  if (r.ok) {
    state.config = r.body;
    state.notificationLines = r.body.options.notification_lines;
  }
  return r.ok;
}

function formMessage(form, prefix, body, ok) {
  const error = $(prefix + "-error");
  const result = $(prefix + "-result");
  for (const input of form.querySelectorAll(".invalid")) input.classList.remove("invalid");
  if (ok) {
    error.hidden = true;
    result.textContent = body;
    result.hidden = false;
  } else {
    result.hidden = true;
    error.textContent = errorLines(body).join("\n");
    error.hidden = false;
    for (const name of errorFields(body)) {
      const input = form.elements[name];
      if (input && input.classList) input.classList.add("invalid");
    }
  }
}

function savedText(what, body) {
  return what + (body && body.saved ? " (in force and written to the configuration file; its comments kept, the previous file kept as .bak)." : " (in force; this relay runs without a configuration file, so it is not saved).");
}

// The switch table and user dialogs: one editor each, over the same mechanics.
const editors = {
  switch: {
    list: "switches",
    path: (key) => "/api/switches/" + key,
    key: (sw) => sw.no,
    title: (sw) => "Switch " + sw.no,
    addTitle: "Add a switch",
    deleteQuestion: (sw) => "Delete switch " + sw.no + " (" + sw.address + ")?",
    render: renderSwitchTable,
    fill(f, sw) {
      for (const k of ["no", "name", "address", "port", "type", "easyset_password"]) f.elements[k].value = sw[k];
      f.elements.enabled.checked = sw.enabled;
    },
    blank(f) {
      const used = new Set(state.config.switches.map((s) => s.no));
      f.elements.no.value = [1, 2, 3, 4, 5, 6, 7, 8].find((n) => !used.has(n)) || "";
    },
    read(f) {
      const e = f.elements;
      return {
        no: Number(e.no.value), name: e.name.value, address: e.address.value.trim(), port: Number(e.port.value),
        type: e.type.value, easyset_password: e.easyset_password.value, enabled: e.enabled.checked,
      };
    },
  },
  user: {
    list: "users",
    path: (key) => "/api/users/" + encodeURIComponent(key),
    key: (u) => u.ip,
    title: (u) => "User " + u.ip,
    addTitle: "Add a user",
    deleteQuestion: (u) => "Delete the user at " + u.ip + (u.name ? " (" + u.name + ")" : "") + "?",
    render: renderUserTable,
    fill(f, u) {
      for (const k of ["ip", "name", "info"]) f.elements[k].value = u[k];
      f.elements.default_switch.value = u.default_switch ?? "";
      f.elements.filtering.checked = u.filtering;
      for (const box of f.querySelectorAll("input[name=switch]")) box.checked = u.switches.includes(Number(box.value));
    },
    blank() {},
    read(f) {
      const e = f.elements;
      return {
        ip: e.ip.value.trim(), name: e.name.value, info: e.info.value,
        switches: [...f.querySelectorAll("input[name=switch]:checked")].map((b) => Number(b.value)),
        default_switch: e.default_switch.value ? Number(e.default_switch.value) : null,
        filtering: e.filtering.checked,
      };
    },
  },
};

const form = (kind) => $(kind + "-form");

function editButtons(kind, entry) {
  return el("td", { class: "actions" },
    el("button", { type: "button", onclick: () => editEntry(kind, entry) }, "Edit"),
    el("button", { type: "button", class: "danger", onclick: () => deleteEntry(kind, entry) }, "Delete"));
}

function resetForm(kind) {
  const f = form(kind);
  f.reset();
  f.elements.editing.value = "";
  editors[kind].blank(f);
  $(kind + "-form-title").textContent = editors[kind].addTitle;
}

function editEntry(kind, entry) {
  const f = form(kind);
  f.elements.editing.value = editors[kind].key(entry);
  editors[kind].fill(f, entry);
  $(kind + "-form-title").textContent = editors[kind].title(entry);
  $(kind + "-error").hidden = true;
}

// After a change: the configuration again, the dialog's table, and the main window.
async function reloadEditor(kind) {
  await loadConfig();
  editors[kind].render();
  refresh();
}

async function deleteEntry(kind, entry) {
  const ed = editors[kind];
  if (!(await confirmAction(ed.deleteQuestion(entry), "Delete"))) return;
  const r = await api("DELETE", ed.path(ed.key(entry)));
  await reloadEditor(kind);
  formMessage(form(kind), kind, r.ok ? savedText(ed.title(entry) + " deleted", r.body) : r.body, r.ok);
}

async function saveEntry(kind, event) {
  event.preventDefault();
  const ed = editors[kind];
  const f = form(kind);
  const body = ed.read(f);
  const editing = f.elements.editing.value;
  const r = editing ? await api("PUT", ed.path(editing), body) : await api("POST", "/api/" + ed.list, body);
  // The table is brought up to date before the outcome is shown.
  if (r.ok) {
    await reloadEditor(kind);
    resetForm(kind);
  }
  formMessage(f, kind, r.ok ? savedText(ed.title(body) + " saved", r.body) : r.body, r.ok);
}

async function openEditor(kind) {
  if (!(await loadConfig())) return;
  editors[kind].render();
  resetForm(kind);
  $(kind + "-error").hidden = true;
  $(kind + "-result").hidden = true;
  $(kind + "-dialog").showModal();
}

function renderSwitchTable() {
  const rows = state.config.switches.map((sw) => el("tr", { dataset: { switch: sw.no } },
    el("td", {}, sw.no), el("td", {}, sw.name), el("td", {}, sw.address), el("td", {}, sw.port),
    el("td", {}, sw.type), el("td", {}, sw.enabled ? "yes" : "no"), editButtons("switch", sw)));
  fill($("switch-table").tBodies[0], rows, "No switch is configured.", 7);
}

function renderUserTable() {
  const c = state.config;
  $("user-access").textContent = c.access.allow_unregistered
    ? "Addresses not listed here may connect too (access.allow_unregistered)."
    : "Only the addresses listed here may connect (access.allow_unregistered is false).";
  const rows = c.users.map((u) => el("tr", { dataset: { ip: u.ip } },
    el("td", {}, u.ip), el("td", {}, u.name), el("td", {}, u.info),
    el("td", {}, u.switches.length ? u.switches.join(", ") : "default rules"),
    el("td", {}, u.default_switch ?? "global (" + c.default_switch + ")"),
    el("td", {}, u.filtering ? "yes" : "no"), editButtons("user", u)));
  fill($("user-table").tBodies[0], rows, "No user is registered.", 7);

  const box = $("user-switches");
  box.querySelectorAll("label").forEach((l) => l.remove());
  for (const sw of c.switches) {
    box.append(el("label", {}, el("input", { type: "checkbox", name: "switch", value: sw.no }), "Switch " + sw.no));
  }
  const select = form("user").elements.default_switch;
  select.replaceChildren(el("option", { value: "" }, "Global default (" + c.default_switch + ")"),
    ...c.switches.map((sw) => el("option", { value: sw.no }, "Switch " + sw.no)));
}

// Bypass sessions.
function renderBypass() {
  const st = state.status;
  if (!st) return;
  fill($("bypass-limits").tBodies[0], st.licence.bypass.map((b) => el("tr", {}, el("td", {}, b.name), el("td", {}, b.in_use), el("td", {}, b.limit))), "", 3);
  fill($("bypass-sessions").tBodies[0], st.sessions.filter((s) => s.bypass).map((s) => sessionRow(s, false)), "No application is connected on the bypass port.", 8);
}

// Licence.
function renderLicenceDetails() {
  const l = state.status && state.status.licence;
  if (!l) return;
  const rows = [
    ["Standing", licenceHeadline(l)],
    ["Serial", l.serial ?? "–"],
    ["Bound to", l.mac_type ? l.mac_type + " MAC " + (l.allowed_mac || "") : "–"],
    ["Expires", l.expires ?? "never"],
    ["Connected switches' MACs", l.switch_macs.join(", ") || "none"],
    ["Licensed sessions", l.licensed_in_use + " of " + l.access_limit],
  ];
  for (const p of l.products) {
    const [use, limit] = productUse(p);
    rows.push([p.name, limit === "licensed" || limit === "not licensed" ? limit + (use === "–" ? "" : ", " + use) : use + " of " + limit]);
  }
  $("licence-details").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function registerLicence(event) {
  event.preventDefault();
  const key = $("licence-key").value.trim();
  const r = await api("POST", "/api/license", { key });
  $("licence-error").hidden = r.ok;
  $("licence-result").hidden = !r.ok;
  if (r.ok) {
    $("licence-result").textContent = "Licence " + r.body.serial + " is in force: " + r.body.grants;
    $("licence-key").value = "";
    await refresh();
  } else {
    $("licence-error").textContent = errorLines(r.body).join("\n");
  }
}

// Call records (the SMDR store): filters, pages, CSV.
const calls = { filters: "", next: null, shown: 0 };

function callFilters() {
  const data = new FormData($("calls-form"));
  const q = new URLSearchParams();
  for (const [k, v] of data.entries()) if (String(v).trim()) q.set(k, String(v).trim());
  return q;
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  return pad(Math.floor(s / 3600)) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
}

function callRow(c) {
  const known = c.layout !== "unknown";
  return el("tr", { dataset: { id: c.id } },
    el("td", {}, c.id), el("td", {}, c.switch), el("td", {}, c.start ?? "–"),
    el("td", {}, c.call_id), el("td", {}, c.extension), el("td", {}, c.trunk),
    el("td", {}, c.flag), el("td", {}, duration(c.duration_s)),
    el("td", {}, known ? c.digits : c.raw), el("td", {}, c.caller_id), el("td", {}, c.account));
}

async function searchCalls(more) {
  const q = more ? new URLSearchParams(calls.filters) : callFilters();
  if (!more) calls.filters = q.toString();
  if (more && calls.next !== null) q.set("after", calls.next);
  const r = await api("GET", "/api/calls?" + q.toString());
  $("calls-error").hidden = r.ok;
  if (!r.ok) {
    $("calls-error").textContent = errorLines(r.body).join("\n");
    return;
  }
  const tbody = $("calls-table").tBodies[0];
  const rows = r.body.calls.map(callRow);
  if (more) {
    tbody.append(...rows);
    calls.shown += rows.length;
  } else {
    fill(tbody, rows, "No call record matches.", 11);
    calls.shown = rows.length;
  }
  calls.next = r.body.next ?? null;
  $("calls-more").hidden = calls.next === null;
  $("calls-count").textContent = calls.shown + " record(s) shown" + (calls.next === null ? "." : "; more match.");
}

async function downloadCalls() {
  const q = callFilters();
  q.set("format", "csv");
  const res = await fetch("/api/calls?" + q.toString(), { headers: authHeaders() });
  if (!res.ok) {
    $("calls-error").hidden = false;
    $("calls-error").textContent = errorLines(await res.json().catch(() => null)).join("\n");
    return;
  }
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", { href: url, download: "calls.csv" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- Start -------------------------------------------------------------------------------

function start() {
  $("connect-all").onclick = () => act("POST", "/api/connect-all", "Connect all");
  $("disconnect-all").onclick = async () => {
    if (await confirmAction("Disconnect every switch? Every session is closed.", "Disconnect all")) act("POST", "/api/disconnect-all", "Disconnect all");
  };
  $("open-switches").onclick = () => openEditor("switch");
  $("open-users").onclick = () => openEditor("user");
  $("open-bypass").onclick = () => { renderBypass(); $("bypass-dialog").showModal(); };
  $("open-licence").onclick = () => {
    renderLicenceDetails();
    $("licence-error").hidden = true;
    $("licence-result").hidden = true;
    $("licence-dialog").showModal();
  };
  for (const kind of Object.keys(editors)) {
    form(kind).addEventListener("submit", (event) => saveEntry(kind, event));
    $(kind + "-new").onclick = () => resetForm(kind);
  }
  $("licence-form").addEventListener("submit", registerLicence);
  $("open-calls").onclick = () => { $("calls-dialog").showModal(); searchCalls(false); };
  $("calls-form").addEventListener("submit", (event) => { event.preventDefault(); searchCalls(false); });
  $("calls-more").onclick = () => searchCalls(true);
  $("calls-csv").onclick = downloadCalls;
  for (const name of ["switch", "user", "bypass", "licence", "calls"]) {
    $(name + "-close").onclick = () => $(name + "-dialog").close();
  }
  loadConfig();
  refresh();
  setInterval(refresh, 1000);
  followNotifications();
}

start();
