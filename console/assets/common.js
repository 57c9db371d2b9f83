// Shared by the console (app.js) and the customer usage page (usage.js):
// API calls, formatting, charts. Plain ES2017, no build step.
(function () {
  "use strict";

  var M = {};
  window.meterd = M;

  // charts holds every uPlot instance by name, for resizing and for tests.
  M.charts = {};

  M.esc = function (v) {
    return String(v == null ? "" : v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  };
  M.num = function (n) { return n == null ? "—" : Number(n).toLocaleString("en-US"); };
  M.money = function (cents) {
    if (cents == null) return "—";
    var neg = cents < 0, c = Math.abs(cents);
    return (neg ? "-$" : "$") + Math.floor(c / 100).toLocaleString("en-US") + "." + String(c % 100).padStart(2, "0");
  };
  M.pct = function (p) { return p == null ? "—" : (Math.round(p * 10) / 10) + "%"; };
  M.date = function (s) { return s ? String(s).replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "—"; };

  // ApiError carries the JSON error of a failed call.
  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);
  M.ApiError = ApiError;

  // api calls meterd with the bearer token from getToken(); it resolves to
  // the JSON body (null for 204) and rejects with an ApiError.
  M.getToken = function () { return ""; };
  M.api = function (path, opts) {
    opts = opts || {};
    var headers = { "Accept": "application/json" };
    var tok = opts.token || M.getToken();
    if (tok) headers["Authorization"] = "Bearer " + tok;
    var init = { method: opts.method || "GET", headers: headers, cache: "no-store", credentials: "omit" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    return M.answer(fetch(path, init));
  };

  // answer turns a fetch's response into the JSON body or an ApiError.
  M.answer = function (responsePromise) {
    return responsePromise.then(function (res) {
      if (res.status === 204) return null;
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!res.ok) {
          var err = (data && data.error) || {};
          throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
        }
        return data;
      });
    });
  };

  M.errorText = function (e) {
    if (e instanceof ApiError) return e.message + " (" + e.code + ")";
    return String(e && e.message || e);
  };

  function dayToUnix(d) { return Date.parse(d + "T00:00:00Z") / 1000; }

  // chartLib resolves once uPlot is loaded: the console loads it async so
  // the numbers need not wait for the chart library.
  M.chartLib = new Promise(function (resolve) {
    if (window.uPlot) { resolve(); return; }
    var s = document.getElementById("uplot-js");
    if (s) s.addEventListener("load", function () { resolve(); });
    window.addEventListener("load", function () { if (window.uPlot) resolve(); });
  });

  // barChart draws daily bars into el. series: [{label, values, color}];
  // stacked: the series are stacked (first at the bottom) and the legend
  // shows each series' own value.
  M.barChart = function (name, el, dates, series, stacked) {
    if (M.charts[name]) { M.charts[name].destroy(); delete M.charts[name]; }
    el.textContent = "";
    var xs = dates.map(dayToUnix);
    var drawn = series.map(function (s) { return s.values.slice(); });
    if (stacked) {
      for (var i = 1; i < drawn.length; i++) {
        for (var j = 0; j < xs.length; j++) drawn[i][j] += drawn[i - 1][j];
      }
    }
    // Draw the tallest stack first so each lower one paints over it.
    var order = series.map(function (_, i) { return i; });
    if (stacked) order.reverse();
    var data = [xs].concat(order.map(function (i) { return drawn[i]; }));
    var bars = uPlot.paths.bars({ size: [0.75, 48], align: 0 });
    var opts = {
      width: Math.max(el.clientWidth || 300, 260), height: 260,
      scales: { x: { time: true, range: function (u, lo, hi) { return [lo - 43200, hi + 43200]; } } },
      axes: [{ space: 60 }, { size: 64, values: function (u, v) { return v.map(M.num); } }],
      cursor: { points: { show: false } },
      series: [{ label: "Day", value: function (u, v) { return v == null ? "" : new Date(v * 1000).toISOString().slice(0, 10); } }]
        .concat(order.map(function (i) {
          var s = series[i];
          return { label: s.label, fill: s.color, stroke: s.color, width: 0, paths: bars, points: { show: false },
            value: function (u, v, si, di) { return di == null ? "" : M.num(s.values[di]); } };
        })),
    };
    var u = new uPlot(opts, data, el);
    M.charts[name] = u;
    el.setAttribute("data-points", String(xs.length));
    return u;
  };

  // chartTable is the data of a chart as a table, for screen readers and
  // anyone who prefers numbers.
  M.chartTable = function (caption, dates, series) {
    var h = "<details><summary>" + M.esc(caption) + " as a table</summary><table><thead><tr><th scope=col>Date</th>";
    series.forEach(function (s) { h += "<th scope=col class=num>" + M.esc(s.label) + "</th>"; });
    h += "</tr></thead><tbody>";
    dates.forEach(function (d, i) {
      h += "<tr><th scope=row>" + M.esc(d) + "</th>";
      series.forEach(function (s) { h += "<td class=num>" + M.num(s.values[i]) + "</td>"; });
      h += "</tr>";
    });
    return h + "</tbody></table></details>";
  };

  window.addEventListener("resize", function () {
    Object.keys(M.charts).forEach(function (k) {
      var u = M.charts[k], el = u.root.parentNode;
      if (el && el.clientWidth) u.setSize({ width: Math.max(el.clientWidth, 260), height: 260 });
    });
  });

  // gauge renders current usage (the body of /api/usage/current).
  M.gauge = function (q) {
    var pct = q.limit == null ? 0 : Math.min(100, q.usage_percentage || 0);
    var cls = q.limit == null ? "" : (q.api_calls >= q.limit ? " over" : (pct >= 80 ? " near" : ""));
    var of = q.limit == null ? "unlimited plan" : "of " + M.num(q.limit) + " included";
    var h = "<div class=\"value\" data-k=\"api_calls\" data-value=\"" + q.api_calls + "\">" + M.num(q.api_calls) + " calls</div>";
    h += "<div class=\"sub\">" + M.esc(of) + (q.limit == null ? "" : " · " + M.pct(q.usage_percentage) + " used") + "</div>";
    if (q.limit != null) {
      h += "<div class=\"gauge" + cls + "\" role=\"meter\" aria-label=\"Usage of the included calls\" aria-valuemin=\"0\" aria-valuemax=\"100\" aria-valuenow=\"" +
        Math.round(pct) + "\" aria-valuetext=\"" + M.esc(M.pct(q.usage_percentage) + " of the limit") + "\"><span style=\"width:" + pct + "%\"></span></div>";
    }
    h += "<div class=\"sub\">Plan <strong data-k=\"plan\">" + M.esc(q.plan) + "</strong> · period " +
      M.esc(q.period_start.slice(0, 10)) + " to " + M.esc(q.period_end.slice(0, 10)) + "</div>";
    if (q.overage_calls) {
      h += "<div class=\"sub warn\">" + M.num(q.overage_calls) + " overage calls · " + M.money(q.overage_cost_cents) + "</div>";
    }
    if (q.remaining != null) h += "<div class=\"sub\"><span data-k=\"remaining\">" + M.num(q.remaining) + "</span> remaining</div>";
    return h;
  };

  M.endpointsTable = function (rows) {
    if (!rows.length) return "<p class=muted>No calls in this window.</p>";
    var h = "<table><caption class=sr-only>Calls per endpoint</caption><thead><tr><th scope=col>Endpoint</th><th scope=col>Method</th>" +
      "<th scope=col class=num>Calls</th><th scope=col class=\"num hide-narrow\">Errors</th><th scope=col class=\"num hide-narrow\">Avg latency</th></tr></thead><tbody>";
    rows.forEach(function (e) {
      h += "<tr><td><code>" + M.esc(e.endpoint) + "</code></td><td>" + M.esc(e.method) + "</td><td class=num>" + M.num(e.api_calls) +
        "</td><td class=\"num hide-narrow\">" + M.num(e.errors) + "</td><td class=\"num hide-narrow\">" + (e.avg_latency_ms ? e.avg_latency_ms.toFixed(1) + " ms" : "—") + "</td></tr>";
    });
    return h + "</tbody></table>";
  };

  M.planColors = ["#1d5fd1", "#2f9e6e", "#b86e00", "#8a4fc7", "#c2410c", "#0e7490", "#6b7280"];
})();
