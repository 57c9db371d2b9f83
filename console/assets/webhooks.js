// meterd console: the Webhooks page (#/webhooks) and one endpoint's
// delivery log (#/webhooks/{id}). Loaded before app.js, which supplies
// M.ui (view helpers) by the time a view runs.
(function () {
  "use strict";
  var M = window.meterd, esc = M.esc, num = M.num;
  M.views = M.views || {};

  var TYPES = ["usage.threshold_reached", "usage.limit_reached", "usage.overage_started", "billing.charge_created",
    "billing.charge_failed", "billing.period_closed", "account.plan_changed"];

  function offText(e) {
    return e.code === "webhooks_off" ? "Webhooks are not enabled on this server (--webhooks=false)." : M.errorText(e);
  }

  function eventsText(ts) { return ts && ts.length ? ts.join(", ") : "all events"; }

  function enabledBadge(on) { return on ? "<span class=\"badge good\">enabled</span>" : "<span class=\"badge bad\">disabled</span>"; }

  function endpointsTable(ws) {
    if (!ws.length) return "<p class=muted>No endpoints yet.</p>";
    var h = "<table><caption class=sr-only>Webhook endpoints</caption><thead><tr><th scope=col>Endpoint</th><th scope=col>State</th>" +
      "<th scope=col class=hide-narrow>Events</th><th scope=col><span class=sr-only>Action</span></th></tr></thead><tbody>";
    ws.forEach(function (w) {
      h += "<tr data-webhook=\"" + esc(w.id) + "\"><td><a href=\"#/webhooks/" + encodeURIComponent(w.id) + "\" aria-label=\"Delivery log of " + esc(w.url) + "\">" +
        "<code class=url>" + esc(w.url) + "</code></a>" + (w.description ? "<div class=muted>" + esc(w.description) + "</div>" : "") +
        "</td><td data-k=\"enabled\" data-value=\"" + w.enabled + "\">" + enabledBadge(w.enabled) + "</td><td class=hide-narrow data-k=\"events\">" + esc(eventsText(w.event_types)) +
        "</td><td><button type=button class=secondary data-toggle=\"" + esc(w.id) + "\" data-on=\"" + w.enabled + "\" aria-label=\"" +
        (w.enabled ? "Disable " : "Enable ") + esc(w.url) + "\">" + (w.enabled ? "Disable" : "Enable") + "</button></td></tr>";
    });
    return h + "</tbody></table>";
  }

  function typeBoxes() {
    return "<fieldset class=types><legend>Events (none checked: all)</legend>" + TYPES.map(function (t, i) {
      return "<label class=check><input type=checkbox name=types value=\"" + esc(t) + "\" id=wh-type-" + i + "> " + esc(t) + "</label>";
    }).join("") + "</fieldset>";
  }

  function webhooksView() {
    var ui = M.ui;
    var h = "<h1>Webhooks</h1>" +
      "<section class=panel aria-labelledby=wh-list-title><h2 id=wh-list-title>Endpoints</h2><div id=webhooks><p class=muted>Loading…</p></div><p id=wh-msg role=status></p></section>" +
      "<section class=panel aria-labelledby=wh-new-title><h2 id=wh-new-title>Add an endpoint</h2>" +
      "<p class=muted>meterd POSTs signed events (Standard Webhooks) to it. Only http(s) URLs.</p>" +
      "<form id=wh-create><div class=row><div class=\"field grow\"><label for=wh-url>URL</label><input id=wh-url type=url required placeholder=\"https://hooks.example.com/meterd\" spellcheck=false></div>" +
      "<div class=field><label for=wh-desc>Description</label><input id=wh-desc></div></div>" + typeBoxes() +
      "<p><button type=submit id=wh-submit>Add endpoint</button></p></form><div id=wh-secret></div></section>";
    ui.setView("webhooks", "Webhooks", h);
    ui.on("#wh-create", "submit", function (ev) {
      ev.preventDefault();
      var types = Array.prototype.slice.call(document.querySelectorAll("#wh-create input[name=types]:checked")).map(function (c) { return c.value; });
      var body = { url: ui.$("#wh-url").value.trim(), event_types: types };
      if (ui.$("#wh-desc").value.trim()) body.description = ui.$("#wh-desc").value.trim();
      M.api("/api/admin/webhooks", { method: "POST", body: body }).then(function (w) {
        // The secret is shown here once and kept nowhere else.
        ui.$("#wh-secret").innerHTML = "<p><strong>Copy this signing secret now: it is not shown again.</strong> Your receiver verifies deliveries with it.</p>" +
          "<p class=secret id=wh-secret-value>" + esc(w.secret) + "</p><button type=button class=secondary id=wh-secret-done>I have copied it</button>";
        ui.on("#wh-secret-done", "click", function () { ui.$("#wh-secret").textContent = ""; ui.$("#wh-url").focus(); });
        ui.$("#wh-create").reset();
        ui.$("#wh-secret-done").focus();
        return loadEndpoints();
      }).catch(function (e) { ui.$("#wh-secret").innerHTML = "<p class=error role=alert>" + esc(offText(e)) + "</p>"; });
    });
    ui.$("#webhooks").addEventListener("click", function (ev) {
      var id = ev.target.getAttribute && ev.target.getAttribute("data-toggle");
      if (!id) return;
      var enable = ev.target.getAttribute("data-on") !== "true";
      M.api("/api/admin/webhooks/" + encodeURIComponent(id), { method: "PATCH", body: { enabled: enable } }).then(function (w) {
        ui.$("#wh-msg").textContent = w.url + (w.enabled ? " is enabled." : " is disabled: its deliveries wait.");
        return loadEndpoints().then(function () {
          var b = document.querySelector("#webhooks button[data-toggle=\"" + id + "\"]");
          if (b) b.focus();
        });
      }).catch(function (e) { ui.$("#wh-msg").textContent = offText(e); });
    });
    return loadEndpoints();
  }

  function loadEndpoints() {
    return M.api("/api/admin/webhooks").then(function (b) {
      M.ui.$("#webhooks").innerHTML = endpointsTable(b.webhooks);
    }, function (e) { M.ui.$("#webhooks").innerHTML = "<p class=muted>" + esc(offText(e)) + "</p>"; });
  }

  function deliveriesTable(ds) {
    if (!ds.length) return "<p class=muted>Nothing delivered yet: events appear here once one of the types above happens.</p>";
    var h = "<table><caption class=sr-only>Deliveries, newest first</caption><thead><tr><th scope=col>Event</th><th scope=col class=hide-narrow>Account</th>" +
      "<th scope=col>Status</th><th scope=col class=num>Attempts</th><th scope=col class=hide-narrow>Last attempt</th><th scope=col>Last answer</th></tr></thead><tbody>";
    ds.forEach(function (d) {
      var answer = (d.last_status ? "HTTP " + d.last_status : "") + (d.last_error ? (d.last_status ? " · " : "") + d.last_error : "");
      var cls = d.status === "delivered" ? "badge good" : d.status === "dead" ? "badge bad" : "badge";
      h += "<tr data-notice=\"" + esc(d.notice_id) + "\" data-status=\"" + esc(d.status) + "\"><td>" + esc(d.event_type) + "<div class=\"muted hide-narrow\"><code>" + esc(d.notice_id) + "</code></div></td>" +
        "<td class=hide-narrow>" + (d.account_id ? "<a href=\"#/accounts/" + encodeURIComponent(d.account_id) + "\">" + esc(d.account_id) + "</a>" : "—") + "</td>" +
        "<td><span class=\"" + cls + "\">" + esc(d.status) + "</span></td><td class=num>" + num(d.attempts) + "</td>" +
        "<td class=hide-narrow>" + esc(M.date(d.last_attempt)) + "</td><td class=" + (d.status === "dead" ? "error" : "muted") + ">" + esc(answer || "—") + "</td></tr>";
    });
    return h + "</tbody></table>";
  }

  function webhookView(id) {
    var ui = M.ui, path = "/api/admin/webhooks/" + encodeURIComponent(id);
    return M.api(path).then(function (w) {
      var h = "<p><a href=\"#/webhooks\">← Webhooks</a></p><h1>Endpoint <code class=url>" + esc(w.url) + "</code></h1>" +
        "<section class=panel aria-labelledby=wh-ep-title><h2 id=wh-ep-title>Endpoint</h2><table><tbody>" +
        "<tr><th scope=row>Id</th><td><code data-k=webhook_id data-value=\"" + esc(w.id) + "\">" + esc(w.id) + "</code></td></tr>" +
        "<tr><th scope=row>State</th><td>" + enabledBadge(w.enabled) + "</td></tr>" +
        "<tr><th scope=row>Events</th><td class=wrap>" + esc(eventsText(w.event_types)) + "</td></tr>" +
        (w.description ? "<tr><th scope=row>Description</th><td class=wrap>" + esc(w.description) + "</td></tr>" : "") +
        "<tr><th scope=row>Created</th><td>" + esc(M.date(w.created_at)) + "</td></tr></tbody></table></section>" +
        "<section class=panel aria-labelledby=wh-log-title><h2 id=wh-log-title>Deliveries</h2><div class=row><div class=field><label for=wh-status>Show</label>" +
        "<select id=wh-status><option value=\"\">all</option><option value=pending>pending</option><option value=delivered>delivered</option><option value=dead>dead</option></select></div>" +
        "<button type=button class=secondary id=wh-refresh>Refresh</button></div><div id=wh-log><p class=muted>Loading…</p></div>" +
        "<div id=wh-replay-box></div><p id=wh-replay-msg role=status></p></section>";
      ui.setView("webhook", "Webhook deliveries", h);
      var reload = function () { return loadLog(path).catch(ui.panelError("#wh-log")); };
      ui.on("#wh-status", "change", reload);
      ui.on("#wh-refresh", "click", reload);
      ui.$("#wh-replay-box").addEventListener("click", function (ev) {
        if (ev.target.id !== "wh-replay") return;
        // Every dead delivery of this endpoint, whenever its event was made.
        M.api(path + "/replay?since=" + encodeURIComponent("1970-01-01T00:00:00Z"), { method: "POST" }).then(function (r) {
          ui.$("#wh-replay-msg").textContent = "Sending " + r.replayed + " dead " + (r.replayed === 1 ? "delivery" : "deliveries") + " again, with the same webhook-id.";
          return reload();
        }, function (e) { ui.$("#wh-replay-msg").textContent = offText(e); });
      });
      return reload();
    }, function (e) {
      if (e.status === 404) { ui.setView("webhook", "Webhook", "<h1>Webhook</h1><p class=error role=alert>" + esc(offText(e)) + "</p><p><a href=\"#/webhooks\">← Webhooks</a></p>"); return; }
      throw e;
    });
  }

  function loadLog(path) {
    var ui = M.ui, status = ui.$("#wh-status").value;
    return M.api(path + "/deliveries?limit=200" + (status ? "&status=" + status : "")).then(function (b) {
      ui.$("#wh-log").innerHTML = deliveriesTable(b.deliveries);
      var dead = b.deliveries.filter(function (d) { return d.status === "dead"; }).length;
      var box = ui.$("#wh-replay-box"), focused = document.activeElement && document.activeElement.id === "wh-replay";
      box.innerHTML = dead ? "<p><button type=button id=wh-replay>Replay dead deliveries</button> <span class=muted>" + num(dead) +
        " shown here gave up after every retry.</span></p>" : "";
      // A refresh must not drop the keyboard user's place.
      if (focused) (ui.$("#wh-replay") || ui.$("#wh-refresh")).focus();
    });
  }

  M.views.webhooks = function (id) { return id ? webhookView(id) : webhooksView(); };
})();
