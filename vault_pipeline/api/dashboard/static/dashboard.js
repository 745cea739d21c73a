/* The vault dashboard's behaviour: fetch one overview per view, draw cards, charts and alerts,
   drill down from a chart point to a record, and refresh when the vault's data changed.
   No inline script and no HTML built from data: every value reaches the page as text. */
(function () {
  "use strict";

  const POLL_MS = 20000;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const viewParams = new URLSearchParams(location.search);
  viewParams.delete("report");
  const viewQuery = viewParams.toString();
  let version = null;
  let current = null;

  // -- small DOM helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const $ = (selector) => document.querySelector(selector);

  function table(node, headers, rows) {
    node.replaceChildren(
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
  }

  // -- formatting ------------------------------------------------------------------------------
  const int = (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US"));
  const pct = (v, digits = 2) => (v === null || v === undefined ? "–" : (v * 100).toFixed(digits) + " %");
  const ms = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " ms");
  const utc = (iso) => (iso ? iso.replace("T", " ").replace(/:00Z$|Z$/, "") + " UTC" : "–");

  function trend(change, unit) {
    if (change === null || change === undefined) return { text: "no previous period to compare", cls: "flat" };
    const size = Math.abs(change).toFixed(1) + (unit === "points" ? " points" : " %");
    if (Math.abs(change) < 0.05) return { text: "unchanged against the previous period", cls: "flat" };
    return { text: (change > 0 ? "▲ up " : "▼ down ") + size + " against the previous period",
             cls: change > 0 ? "up" : "down" };
  }

  // -- fetching --------------------------------------------------------------------------------
  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) {
      location.assign("/dashboard/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("signed out");
    }
    const body = await response.json();
    if (!response.ok) {
      const detail = body.detail && body.detail.msg ? body.detail.msg : JSON.stringify(body.detail);
      throw new Error(body.error + ": " + detail);
    }
    return body;
  }

  function problem(message) {
    const node = $("#problem");
    node.hidden = !message;
    node.textContent = message || "";
  }

  async function load() {
    try {
      const data = await getJson("/dashboard/data/overview?" + viewQuery);
      problem(null);
      current = data;
      version = data.version;
      render(data);
      $("#status").textContent = "Showing " + utc(data.range.start) + " to " + utc(data.range.end) +
        (data.range.provider ? " for " + data.range.provider : " for all providers") +
        " · updated " + new Date().toISOString().slice(11, 19) + " UTC";
      document.body.dataset.loaded = data.version;
    } catch (error) {
      if (error.message !== "signed out") problem(error.message);
    }
  }

  async function poll() {
    if (document.hidden || version === null) return;
    try {
      const answer = await getJson("/dashboard/data/version?" + viewQuery);
      if (answer.version !== version) await load();  // nothing changed: nothing redrawn
    } catch (error) {
      if (error.message !== "signed out") problem(error.message);
    }
  }

  // -- rendering -------------------------------------------------------------------------------
  function render(data) {
    renderCards(data.cards);
    renderProviderChoices(data.provider_choices, data.range.provider);
    renderCharts(data);
    renderCompliance(data.compliance);
    table($("#table-techniques"), ["Technique", "Source", "Uses", "Success rate", "Avg latency", "Attack success"],
      data.techniques.map((t) => [t.technique || "–", t.source || "–", int(t.uses), pct(t.success_rate),
        ms(t.avg_latency_ms), t.attack_success_rate === null ? "–" : pct(t.attack_success_rate)]));
  }

  function renderCards(cards) {
    for (const card of cards) {
      const node = $("#card-" + card.id);
      node.dataset.value = card.value === null ? "" : String(card.value);
      let value, detail, change;
      if (card.id === "total_requests") { value = int(card.value); detail = "generation events"; }
      else if (card.id === "success_rate") { value = pct(card.value); detail = "of requests succeeded"; }
      else if (card.id === "avg_latency_ms") { value = ms(card.value); detail = "mean over the range"; }
      else {
        value = pct(card.value, 1);
        detail = card.focus ? card.focus + (card.providers ? " of " + card.providers + " providers" : "")
                            : "no provider served";
      }
      if (card.id === "provider_usage") { change = trend(card.change_points, "points"); node.dataset.change = card.change_points ?? ""; }
      else { change = trend(card.change_percent, "percent"); node.dataset.change = card.change_percent ?? ""; }
      node.querySelector(".card-value").textContent = value;
      node.querySelector(".card-detail").textContent = detail;
      const trendNode = node.querySelector(".card-trend");
      trendNode.textContent = change.text;
      trendNode.className = "card-trend " + change.cls;
    }
  }

  function renderProviderChoices(choices, chosen) {
    const select = $("#provider");
    const options = [el("option", { value: "", text: "All providers" })];
    for (const name of choices) options.push(el("option", { value: name, text: name, selected: name === chosen }));
    select.replaceChildren(...options);
  }

  const LAYOUT = {
    margin: { l: 56, r: 56, t: 16, b: 48 }, autosize: true, font: { family: "system-ui, sans-serif", size: 12, color: "#1f2328" },
    paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff", legend: { orientation: "h", y: -0.25 },
  };
  // No mode bar: it styles itself with per-chart <style> elements, which the strict CSP refuses.
  const CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
  const COLORS = ["#0b5cad", "#b35900", "#1a7f37", "#8250df", "#b42318", "#4d5b6a"];

  function draw(id, traces, layout, summary) {
    const node = $("#chart-" + id);
    node.setAttribute("aria-label", summary);
    if (window.Plotly) window.Plotly.react(node, traces, Object.assign({}, LAYOUT, layout), CONFIG);
  }

  function renderCharts(data) {
    const requests = data.series.requests;
    const latency = data.series.latency_p95_ms;
    const perDay = data.range.interval === "day";
    const stamp = (p) => p.timestamp.replace("Z", "");
    draw("timeseries", [
      { type: "scatter", mode: "lines+markers", name: "requests", x: requests.map(stamp), y: requests.map((p) => p.value),
        line: { color: COLORS[0] }, customdata: requests.map((p) => p.timestamp) },
      { type: "scatter", mode: "lines+markers", name: "p95 latency (ms)", x: latency.map(stamp), yaxis: "y2",
        y: latency.map((p) => p.value), line: { color: COLORS[1], dash: "dot" }, customdata: latency.map((p) => p.timestamp) },
    ], { yaxis: { title: { text: "requests per " + data.range.interval }, rangemode: "tozero" },
         yaxis2: { title: { text: "p95 ms" }, overlaying: "y", side: "right", rangemode: "tozero" } },
    "Line chart of requests and p95 latency per " + data.range.interval + ", " + requests.length + " points; the data table below lists them.");
    const chart = $("#chart-timeseries");
    if (chart.removeAllListeners) chart.removeAllListeners("plotly_click");
    if (chart.on) chart.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      if (point) (perDay ? openDay : openHour)(point.customdata);
    });
    table($("#table-timeseries"), [perDay ? "Day" : "Hour", "Requests", "p95 latency"], requests.map((p, i) => [
      el("button", { type: "button", class: "link", text: utc(p.timestamp),
                     onclick: () => (perDay ? openDay : openHour)(p.timestamp) }),
      int(p.value), ms(latency[i] ? latency[i].value : null)]));

    const providers = data.providers;
    const names = providers.map((p) => p.provider_id || "(none)");
    draw("providers", [
      { type: "bar", name: "requests", x: names, y: providers.map((p) => p.total_requests), marker: { color: COLORS[0] } },
      { type: "bar", name: "failed", x: names, y: providers.map((p) => p.failed_requests), marker: { color: COLORS[4] } },
    ], { barmode: "group", yaxis: { title: { text: "requests" } } },
    "Bar chart comparing " + providers.length + " providers by requests and failures; the data table below lists them.");
    table($("#table-providers"), ["Provider", "Requests", "Failed", "Success rate", "Avg latency", "p95 latency", "Tokens", "Cost (USD)"],
      providers.map((p) => [p.provider_id || "(none)", int(p.total_requests), int(p.failed_requests),
        pct(p.total_requests ? p.successful_requests / p.total_requests : null), ms(p.avg_latency_ms),
        ms(p.p95_latency_ms), int(p.total_tokens), p.total_cost_usd.toFixed(4)]));

    const heat = data.heatmap;
    draw("heatmap", [{ type: "heatmap", z: heat.values, x: heat.hours, y: heat.weekdays, colorscale: [[0, "#eef3f8"], [1, "#0b3d91"]],
      hovertemplate: "%{y} %{x}:00 UTC: %{z} requests<extra></extra>" }],
    { xaxis: { title: { text: "hour of day (UTC)" }, dtick: 3 }, yaxis: { autorange: "reversed" } },
    "Heatmap of requests by weekday and hour of day; the data table below lists the busy cells.");
    const cells = [];
    heat.values.forEach((row, d) => row.forEach((v, h) => { if (v) cells.push([heat.weekdays[d], h + ":00", int(v)]); }));
    table($("#table-heatmap"), ["Weekday", "Hour (UTC)", "Requests"], cells);

    draw("share", [{ type: "pie", labels: names, values: providers.map((p) => p.total_requests), hole: 0.45,
      marker: { colors: COLORS }, sort: false }], { showlegend: true },
    "Pie chart of the request share of " + providers.length + " providers; the data table below lists them.");
    table($("#table-share"), ["Provider", "Share", "Previous period"], providers.map((p) => [
      p.provider_id || "(none)", pct(p.request_share, 1), p.previous_share === null ? "–" : pct(p.previous_share, 1)]));
  }

  function list(items, render) {
    return el("ul", { class: "items" }, items.map((item) => el("li", {}, render(item))));
  }

  function panel(id, state, ...content) {
    const node = $("#panel-" + id);
    node.dataset.state = state;
    node.querySelector(".panel-body").replaceChildren(el("p", { class: "badge " + state, text: state === "ok" ? "OK" : state === "alert" ? "Alert" : "Unknown" }), ...content.filter((part) => part !== null && part !== undefined));
  }

  function renderCompliance(c) {
    const checks = c.failing_checks;
    panel("checks", checks.count ? "alert" : "ok",
      el("p", { text: checks.count + " of " + checks.evaluated + " validation results under the " + pct(checks.target, 0) + " pass-rate target" }),
      list(checks.items, (r) => r.suite + " · " + r.partition + " · " + pct(r.pass_rate)));
    const q = c.quarantine;
    panel("quarantine", q.count ? "alert" : "ok",
      el("p", { text: (q.complete ? "" : "at least ") + q.count + " records held in quarantine in this range" }),
      list(q.items, (i) => [el("code", { text: i.log_id }), " · " + i.partition + " · " + i.reason]),
      q.count > q.items.length ? el("p", { class: "note", text: "… and " + (q.count - q.items.length) + " more (GET /v1/quarantine lists them all)" }) : null);
    const v = c.verify;
    if (!v.recorded) panel("verify", "unknown", el("p", { text: v.message }));
    else if (!v.readable) panel("verify", "alert", el("p", { text: v.message }));
    else panel("verify", v.clean ? "ok" : "alert",
      el("p", { text: (v.clean ? "clean" : v.count + " findings") + " · last run finished " + (v.finished_at || "–") }),
      list(v.findings, (f) => f.type + " · " + (f.provider || "") + " " + (f.partition || "") + (f.detail ? " · " + (typeof f.detail === "string" ? f.detail : JSON.stringify(f.detail)) : "")));
    const r = c.retention;
    panel("retention", r.breaches ? "alert" : "ok",
      el("p", { text: r.breaches ? r.breaches + " tables hold rows past their retention" : "no rows past retention" }),
      list(r.tables, (t) => t.table + ": oldest " + (t.oldest_date || "–") + ", kept " + t.retention_days + " days (from " + t.keep_from + ")" + (t.breach ? " · breach" : "")));
  }

  // -- drill-down ------------------------------------------------------------------------------
  const trail = [];
  function crumbs(level, label, action) {
    trail.length = level;
    trail.push({ label, action });
    $("#crumbs").replaceChildren(...trail.map((step, i) => el("li", {}, i === trail.length - 1
      ? el("span", { "aria-current": "page", text: step.label })
      : el("button", { type: "button", class: "link", text: step.label, onclick: step.action }))));
  }
  function drill(...content) {
    $("#drill-body").replaceChildren(...content);
    $("#drill-title").focus({ preventScroll: false });
  }
  async function guarded(work) {
    try { await work(); } catch (error) { if (error.message !== "signed out") drill(el("p", { class: "alert", role: "alert", text: error.message })); }
  }

  function openDay(dayStamp) {
    const day = dayStamp.slice(0, 10);
    const hours = current.series.hourly_requests.filter((p) => p.timestamp.startsWith(day));
    crumbs(0, "Day " + day, () => openDay(dayStamp));
    drill(el("p", { text: "Hours of " + day + " (UTC):" }), list(hours, (p) =>
      el("button", { type: "button", class: "link", text: utc(p.timestamp) + " · " + int(p.value) + " requests",
                     onclick: () => openHour(p.timestamp, 1) })));
  }

  function openHour(stamp, level = 0) {
    return guarded(async () => {
      const data = await getJson("/dashboard/data/hour?hour=" + encodeURIComponent(stamp));
      crumbs(level, "Hour " + utc(data.hour), () => openHour(stamp, level));
      if (!data.providers.length) { drill(el("p", { text: "No requests in this hour." })); return; }
      const node = el("table", { id: "hour-providers" });
      table(node, ["Provider (partition)", "Requests", "Success rate", "Records indexed", "LLM providers", ""],
        data.providers.map((p) => [el("code", { text: p.partition }), int(p.requests), pct(p.success_rate),
          int(p.records_indexed), p.llm_providers.map((l) => l.llm_provider + " " + l.requests).join(", "),
          el("button", { type: "button", class: "button small", text: "Records of " + p.provider,
                         onclick: () => openRecords(p.provider, data.hour, 0, level + 1) })]));
      drill(el("div", { class: "table-wrap" }, node));
    });
  }

  function openRecords(provider, hour, offset, level) {
    return guarded(async () => {
      const q = new URLSearchParams({ provider, hour, offset: String(offset) });
      const page = await getJson("/dashboard/data/records?" + q);
      crumbs(level, provider + " records", () => openRecords(provider, hour, offset, level));
      const node = el("table", { id: "records" });
      table(node, ["Record", "Event time", "Size", "Status"], page.data.map((r) => [
        el("button", { type: "button", class: "link mono", text: r.id, onclick: () => openRecord(r.id, level + 1) }),
        r.timestamp || "–", int(r.size) + " B", r.status]));
      const last = Math.min(page.offset + page.limit, page.total_count);
      drill(el("p", { text: "Records " + (page.total_count ? page.offset + 1 : 0) + "–" + last + " of " + int(page.total_count) }),
        el("div", { class: "table-wrap" }, node),
        el("div", { class: "pager" },
          el("button", { type: "button", class: "button small", text: "Previous page", disabled: page.offset === 0,
                         onclick: () => openRecords(provider, hour, Math.max(0, offset - page.limit), level) }),
          el("button", { type: "button", class: "button small", text: "Next page", disabled: !page.has_more,
                         onclick: () => openRecords(provider, hour, offset + page.limit, level) })));
    });
  }

  function dl(pairs) {
    return el("dl", { class: "facts" }, pairs.map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  }

  function openRecord(logId, level) {
    return guarded(async () => {
      const r = await getJson("/dashboard/data/record/" + encodeURIComponent(logId));
      crumbs(level, "Record " + logId.slice(0, 12) + "…", () => openRecord(logId, level));
      const parts = [el("h3", { text: "Record" }), dl([["Log id", el("code", { text: r.id })], ["Checksum", el("code", { text: r.checksum })],
        ["Partition", r.partition], ["Event time", r.timestamp || "–"], ["Size", int(r.size) + " bytes"], ["Status", r.status],
        ["Stored at", el("code", { text: r.object_key + " @ " + r.offset })]])];
      parts.push(el("h3", { text: "Raw bytes" }));
      if (r.raw.available) {
        const bytes = Uint8Array.from(atob(r.raw.base64), (c) => c.charCodeAt(0));
        parts.push(el("p", { class: "badge ok", text: "verified against the catalog checksum" }),
          el("pre", { id: "raw-bytes", class: "raw", tabindex: "0", text: new TextDecoder("utf-8").decode(bytes) }),
          el("a", { class: "button small", href: "/dashboard/data/record/" + encodeURIComponent(r.id) + "/raw", download: r.id + ".json",
                    text: "Download the exact bytes" }));
      } else {
        parts.push(el("p", { id: "raw-unavailable", class: r.raw.error ? "alert" : "note", text: (r.raw.error ? r.raw.error + ": " : "") + r.raw.reason }));
      }
      parts.push(el("h3", { text: "Merkle inclusion proof" }));
      if (r.proof.available) {
        parts.push(dl([["Ledger entry", r.proof.provider + " #" + r.proof.sequence], ["Leaf", r.proof.leaf_index + " of " + r.proof.tree_size],
          ["Merkle root", el("code", { text: r.proof.merkle_root })], ["Audit path", el("code", { text: r.proof.audit_path.join(" ") || "(single leaf)" })]]));
      } else parts.push(el("p", { class: r.proof.error ? "alert" : "note", text: r.proof.reason }));
      parts.push(el("h3", { text: "Golden decision" }));
      const g = r.golden;
      if (!g.promoted || g.error) parts.push(el("p", { id: "golden-decision", class: g.error ? "alert" : "note", text: g.message }));
      else parts.push(dl([["Decision", el("strong", { id: "golden-decision", text: g.decision })], ["Reason", g.reason || "–"],
        ["Masked", g.masked && g.masked.length ? g.masked.map((m) => m.path + " (" + m.type + ")").join(", ") : "nothing"],
        ["Promoted", (g.promoted_at || "–") + (g.decision_entry ? " · decision entry #" + g.decision_entry.sequence : "")],
        ["Policy", (g.policy_tier || "–") + " / " + (g.masking_policy || "–")]]));
      drill(...parts);
    });
  }

  // -- wiring ----------------------------------------------------------------------------------
  function customRange() {
    const custom = $("#preset").value === "custom";
    for (const node of document.querySelectorAll(".custom-range")) node.hidden = !custom;
    for (const id of ["#start", "#end"]) $(id).disabled = !custom;
  }
  $("#preset").addEventListener("change", customRange);
  customRange();

  const reportForm = $("#report-form");
  if (reportForm) reportForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(reportForm.action, { method: "POST", credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(reportForm)).toString() });
    const body = await response.json();
    const out = $("#report-result");
    const problem = (b) => el("span", { class: "alert", text: b.error + ": " +
      (typeof b.detail === "string" ? b.detail : (b.detail && b.detail.msg) || JSON.stringify(b.detail)) });
    if (!response.ok) { out.replaceChildren(problem(body)); return; }
    out.replaceChildren("Compliance report ", el("code", { text: body.report_id }), " " + body.status + "…");
    // The report is generated in the background: follow its status, then offer its forms.
    for (let attempt = 0; attempt < 120; attempt++) {
      await new Promise((done) => setTimeout(done, 1000));
      const state = await (await fetch(body.url, { credentials: "same-origin" })).json();
      if (state.status === "completed") {
        const links = Object.entries(state.exports).map(([format, href]) =>
          el("a", { href, text: format.toUpperCase(), class: "report-link", download: true }));
        out.replaceChildren("Compliance report ", el("code", { text: state.report_id }), ` v${state.version}: `,
          ...links.flatMap((link, i) => (i ? [", ", link] : [link])));
        return;
      }
      if (state.status === "failed" || state.error) { out.replaceChildren(problem({ error: "report_failed", detail: state.error })); return; }
    }
  });

  load();
  setInterval(poll, POLL_MS);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
})();
