// The customer usage page: one account's usage, read with a portal token
// (from the URL fragment, which browsers never send to a server) or an
// API key typed in. The credential stays in this tab's memory.
(function () {
  "use strict";
  var M = window.meterd, $ = function (s) { return document.querySelector(s); };
  var cred = "";

  M.getToken = function () { return cred; };

  function fromFragment() {
    var m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (!m) return "";
    var t = decodeURIComponent(m[1]);
    // Drop the token from the address bar and history.
    history.replaceState(null, "", location.pathname + location.search);
    return t;
  }

  function show() {
    $("#usage-error").textContent = "";
    return Promise.all([
      M.api("/api/usage/current"),
      M.api("/api/usage/history?days=30"),
      M.api("/api/usage/endpoints?days=30"),
    ]).then(function (r) {
      var q = r[0], hb = r[1], eb = r[2];
      $("#cred-form").hidden = true;
      $("#usage").hidden = false;
      $("#title").textContent = "API usage";
      $("#usage").setAttribute("data-account", q.account_id);
      $("#gauge").innerHTML = M.gauge(q);
      var dates = hb.days.map(function (d) { return d.date; });
      var series = [{ label: "calls", values: hb.days.map(function (d) { return d.api_calls; }), color: "#1d5fd1" }];
      M.barChart("usage-history", $("#chart-usage"), dates, series, false);
      $("#hist-table").innerHTML = M.chartTable("Calls per day", dates, series);
      $("#endpoints").innerHTML = M.endpointsTable(eb.endpoints);
    }, function (e) {
      $("#usage").hidden = true;
      $("#cred-form").hidden = false;
      $("#usage-error").textContent = e.code === "portal_token_expired" ? "This link has expired. Open the usage page again from the application." :
        e.status === 401 || e.status === 403 ? "This key or link is not valid." : M.errorText(e);
    });
  }

  $("#cred-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    cred = $("#cred").value.trim();
    $("#cred").value = "";
    if (cred) show();
  });

  // A new link opened in the same tab changes only the fragment.
  window.addEventListener("hashchange", function () {
    var t = fromFragment();
    if (t) { cred = t; show(); }
  });

  cred = fromFragment();
  if (cred) show(); else $("#cred-form").hidden = false;
})();
