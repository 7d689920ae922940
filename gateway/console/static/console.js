// Lambdalet console: charts (uPlot), the live log tail (server-sent events)
// and small conveniences. Every page works without it. Text that comes from
// the server is inserted with textContent, never as markup.
"use strict";

(function () {
  const COLORS = { a: "#0b5cad", b: "#b3261e", c: "#e07b00", d: "#1e7a3c", e: "#6f42c1" };

  const CHARTS = {
    calls: { series: [["invocations", "Invocations", COLORS.a], ["errors", "Errors", COLORS.b], ["throttles", "Throttles", COLORS.c]], total: "invocations", unit: "invocations" },
    duration: { series: [["p50_ms", "p50 (ms)", COLORS.a], ["p99_ms", "p99 (ms)", COLORS.b]], unit: "ms" },
    cold: { series: [["cold_starts", "Cold starts", COLORS.e]], total: "cold_starts", unit: "cold starts" },
    concurrency: { series: [["concurrent_max", "Highest", COLORS.a], ["concurrent_mean", "Mean", COLORS.d]], unit: "" },
    queue: { series: [["async_depth", "Async queue depth", COLORS.a], ["dlq", "Dead-letter queue", COLORS.b]], unit: "" },
    cost: { series: [["gb_s", "Billed GB-s", COLORS.a], ["cost_usd", "Cost after free tier (USD)", COLORS.b, "usd"]], total: "gb_s", unit: "GB-s" },
  };

  function fmtTime(t, step) {
    const d = new Date(t * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    return step >= 3600 ? (d.getMonth() + 1) + "/" + d.getDate() + " " + hm : hm;
  }

  function fmtNumber(v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString();
    if (a >= 1) return String(Math.round(v * 100) / 100);
    return String(Number(v.toPrecision(3)));
  }

  function sum(values) {
    let s = 0;
    for (const v of values) if (typeof v === "number") s += v;
    return s;
  }

  function width(el) {
    return Math.max(240, Math.floor(el.getBoundingClientRect().width || el.clientWidth || 480));
  }

  function fillTable(table, doc, spec) {
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const label of ["Time", ...spec.series.map((s) => s[1])]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = label;
      head.appendChild(th);
    }
    const body = table.createTBody();
    let rows = 0;
    for (let i = doc.t.length - 1; i >= 0 && rows < 60; i--) {
      const values = spec.series.map((s) => doc[s[0]][i]);
      if (!values.some((v) => typeof v === "number" && v !== 0)) continue;
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = fmtTime(doc.t[i], doc.step);
      tr.appendChild(th);
      for (const v of values) tr.insertCell().textContent = fmtNumber(v);
      rows++;
    }
    if (!rows) body.insertRow().insertCell().textContent = "No data in this range.";
  }

  function drawChart(fig, doc) {
    const spec = CHARTS[fig.dataset.chart];
    if (!spec) return;
    const plot = fig.querySelector(".plot");
    const data = [doc.t, ...spec.series.map((s) => doc[s[0]])];
    const total = spec.total ? sum(doc[spec.total]) : null;
    fig.dataset.total = total === null ? "" : String(total);
    fig.dataset.points = String(doc.t.length);
    const totalEl = fig.querySelector(".total");
    if (totalEl) totalEl.textContent = total === null ? "" : "· " + fmtNumber(total) + " " + spec.unit + " in " + doc.range;
    fillTable(fig.querySelector("table.data"), doc, spec);
    if (fig._plot) {
      fig._plot.setData(data);
      return;
    }
    if (typeof uPlot === "undefined") return;
    const scales = { x: { time: true } };
    const ticks = (u, splits) => splits.map(fmtNumber);
    const axes = [{}, { size: 60, values: ticks }];
    if (spec.series.some((s) => s[3] === "usd")) {
      scales.usd = { auto: true };
      axes.push({ scale: "usd", side: 1, size: 70, grid: { show: false }, values: ticks });
    }
    const opts = {
      width: width(plot),
      height: 200,
      scales,
      axes,
      legend: { live: true },
      cursor: { focus: { prox: 16 } },
      series: [{}, ...spec.series.map((s) => ({ label: s[1], stroke: s[2], width: 2, scale: s[3] || "y", spanGaps: false, points: { show: true, size: 4 } }))],
    };
    fig._plot = new uPlot(opts, data, plot);
  }

  async function loadCharts(box) {
    const res = await fetch(box.dataset.charts, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error("chart data: " + res.status);
    const doc = await res.json();
    for (const fig of box.querySelectorAll("figure[data-chart]")) drawChart(fig, doc);
    box.dataset.loaded = String(Date.now());
  }

  function sparkline(el) {
    if (typeof uPlot === "undefined") return;
    const values = el.dataset.values.split(",").map((v) => (v === "" ? null : Number(v)));
    if (!values.some((v) => v !== null && v !== 0)) return;
    const xs = values.map((_, i) => i);
    const stroke = el.classList.contains("errors") ? COLORS.b : el.classList.contains("latency") ? COLORS.c : COLORS.a;
    new uPlot({
      width: 80, height: 22, pxAlign: false, cursor: { show: false }, select: { show: false }, legend: { show: false },
      scales: { x: { time: false } }, axes: [{ show: false }, { show: false }],
      series: [{}, { stroke, width: 1.5, points: { show: false }, spanGaps: true }],
    }, [xs, values], el);
  }

  function liveTail(button) {
    const list = document.getElementById("tail");
    const state = document.getElementById("tail-state");
    const filter = document.getElementById("tail-filter");
    let source = null;
    const stop = (why) => {
      if (source) source.close();
      source = null;
      button.textContent = "Start live tail";
      button.setAttribute("aria-pressed", "false");
      state.textContent = why || "Stopped.";
    };
    const start = () => {
      const url = button.dataset.tail + (filter.value ? "?filter=" + encodeURIComponent(filter.value) : "");
      source = new EventSource(url, { withCredentials: true });
      button.textContent = "Stop live tail";
      button.setAttribute("aria-pressed", "true");
      state.textContent = "Connecting…";
      source.onopen = () => { state.textContent = "Live: new lines appear as they are logged."; };
      source.onerror = () => { if (source) state.textContent = "Reconnecting…"; };
      source.addEventListener("log", (ev) => {
        const e = JSON.parse(ev.data);
        const li = document.createElement("li");
        const when = document.createElement("time");
        when.dateTime = new Date(e.timestamp).toISOString();
        when.textContent = new Date(e.timestamp).toLocaleTimeString();
        li.appendChild(when);
        li.appendChild(document.createTextNode(e.message));
        const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
        list.appendChild(li);
        while (list.children.length > 2000) list.removeChild(list.firstChild);
        if (atBottom) list.scrollTop = list.scrollHeight;
      });
    };
    button.addEventListener("click", () => (source ? stop() : start()));
    filter.addEventListener("change", () => { if (source) { stop(); start(); } });
    const clear = document.getElementById("tail-clear");
    if (clear) clear.addEventListener("click", () => list.replaceChildren());
    window.addEventListener("pagehide", () => stop());
  }

  function filterTable(input) {
    const table = document.getElementById(input.dataset.filterTable);
    if (!table) return;
    input.addEventListener("input", () => {
      const q = input.value.trim().toLowerCase();
      for (const tr of table.tBodies[0].rows) {
        const hay = (tr.dataset.name + " " + tr.dataset.runtime).toLowerCase();
        tr.hidden = q !== "" && !hay.includes(q);
      }
    });
  }

  function init() {
    for (const box of document.querySelectorAll("[data-charts]")) {
      const refresh = () => loadCharts(box).catch((err) => { box.dataset.error = String(err); });
      refresh();
      setInterval(refresh, 30000);
      let pending = null;
      window.addEventListener("resize", () => {
        clearTimeout(pending);
        pending = setTimeout(() => {
          for (const fig of box.querySelectorAll("figure[data-chart]")) {
            if (fig._plot) fig._plot.setSize({ width: width(fig.querySelector(".plot")), height: 200 });
          }
        }, 150);
      });
    }
    for (const el of document.querySelectorAll(".spark[data-values]")) sparkline(el);
    const tail = document.querySelector("[data-tail]");
    if (tail) liveTail(tail);
    for (const sel of document.querySelectorAll("select[data-autosubmit]")) sel.addEventListener("change", () => sel.form.submit());
    for (const tz of document.querySelectorAll("input[data-tz]")) tz.value = String(new Date().getTimezoneOffset());
    for (const input of document.querySelectorAll("input[data-filter-table]")) filterTable(input);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
