// Loaded first, before the chart library: when this tab is signed in and
// opens on the overview, ask for the overview's numbers at once, so the
// request runs while the other scripts load. app.js picks the answer up.
(function () {
  "use strict";
  var tok = sessionStorage.getItem("meterd.admin_token");
  var h = location.hash;
  if (!tok || !(h === "" || h === "#" || h === "#/" || h.indexOf("#/overview") === 0)) return;
  window.meterdPrefetch = {
    overview: fetch("/api/admin/analytics/overview", { headers: { "Accept": "application/json", "Authorization": "Bearer " + tok }, cache: "no-store", credentials: "omit" }),
  };
})();
