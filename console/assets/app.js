// meterd console: a small hash-routed page over meterd's JSON API.
// The admin token lives in sessionStorage (this tab only) and is sent as
// a bearer token; it never goes into a URL or a cookie.
(function () {
  "use strict";
  var M = window.meterd, esc = M.esc, num = M.num, money = M.money;
  var TOKEN = "meterd.admin_token";
  var view = document.getElementById("view");
  var state = { plans: [] };

  M.getToken = function () { return sessionStorage.getItem(TOKEN) || ""; };

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function on(sel, ev, fn) { var el = $(sel); if (el) el.addEventListener(ev, fn); }

  function showSignin(msg) {
    $("#signin").hidden = false; $("#nav").hidden = true; $("#signout").hidden = true;
    view.textContent = "";
    $("#signin-error").textContent = msg || "";
    $("#token").focus();
  }

  document.getElementById("signin-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var tok = $("#token").value.trim();
    if (!tok) return;
    M.api("/api/admin/analytics/overview", { token: tok }).then(function () {
      sessionStorage.setItem(TOKEN, tok);
      $("#token").value = "";
      route();
    }, function (e) {
      $("#signin-error").textContent = e.status === 401 ? "That token was not accepted." : M.errorText(e);
    });
  });
  on("#signout", "click", function () { sessionStorage.removeItem(TOKEN); location.hash = "#/overview"; showSignin(); });

  // fail shows an error in place of a view; a 401 means the token went
  // stale (rotated), so it asks to sign in again.
  function fail(e) {
    if (e && e.status === 401) { sessionStorage.removeItem(TOKEN); showSignin("Your session's token was refused; sign in again."); return; }
    view.innerHTML = "<p class=error role=alert>" + esc(M.errorText(e)) + "</p>";
  }

  function setView(name, title, html) {
    Object.keys(M.charts).forEach(function (k) { M.charts[k].destroy(); delete M.charts[k]; });
    $all("#nav a").forEach(function (a) {
      if (a.getAttribute("data-nav") === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    document.title = title + " · meterd";
    view.innerHTML = html;
    view.setAttribute("data-view", name);
  }

  function route() {
    if (!M.getToken()) { showSignin(); return; }
    $("#signin").hidden = true; $("#nav").hidden = false; $("#signout").hidden = false;
    var h = location.hash.replace(/^#\/?/, "");
    var parts = h.split("/").map(decodeURIComponent);
    var p;
    if (M.views[parts[0]]) p = M.views[parts[0]](parts[1]); // webhooks.js
    else if (parts[0] === "accounts" && parts[1]) p = accountView(parts[1]);
    else if (parts[0] === "accounts") p = accountsView();
    else if (parts[0] === "billing") p = billingView();
    else p = overviewView();
    p.catch(fail);
  }
  // After an in-page navigation, move focus to the new content so screen
  // readers announce it and Tab continues from there.
  window.addEventListener("hashchange", function () {
    route();
    if ($("#signin").hidden) document.getElementById("main").focus();
  });

  // Pages in their own files (loaded before this one) register in
  // M.views; M.ui holds the helpers they share.
  M.views = M.views || {};
  M.ui = { $: $, on: on, setView: setView, fail: fail, panelError: panelError };

  function plans() {
    if (state.plans.length) return Promise.resolve(state.plans);
    // prefetch.js may have asked for the overview while the page loaded.
    var pre = window.meterdPrefetch && window.meterdPrefetch.overview;
    if (pre) window.meterdPrefetch.overview = null;
    return (pre ? M.answer(pre) : M.api("/api/admin/analytics/overview")).then(function (o) {
      state.plans = Object.keys(o.users).filter(function (k) { return k !== "total"; });
      return state.plans;
    });
  }

  // ---- Overview ----

  function card(label, key, value, text, sub) {
    return "<div class=card><div class=label>" + esc(label) + "</div><div class=value data-k=\"" + esc(key) + "\" data-value=\"" +
      esc(value) + "\">" + esc(text) + "</div>" + (sub ? "<div class=sub>" + sub + "</div>" : "") + "</div>";
  }

  function overviewView() {
    var started = performance.now();
    // prefetch.js may have asked for the overview while the page loaded.
    var pre = window.meterdPrefetch && window.meterdPrefetch.overview;
    if (pre) window.meterdPrefetch.overview = null;
    return (pre ? M.answer(pre) : M.api("/api/admin/analytics/overview")).then(function (o) {
      state.plans = Object.keys(o.users).filter(function (k) { return k !== "total"; });
      var billed = o.overage_billed_cents, unbilled = o.overage_unbilled_cents;
      var h = "<h1>Overview</h1><div class=grid>";
      h += card("Accounts", "users.total", o.users.total, num(o.users.total),
        state.plans.map(function (p) { return esc(p) + " <span data-k=\"users." + esc(p) + "\" data-value=\"" + o.users[p] + "\">" + num(o.users[p]) + "</span>"; }).join(" · "));
      h += card("Calls today", "api_calls.today", o.api_calls.today, num(o.api_calls.today), num(o.api_calls.denied_today) + " denied");
      h += card("Calls this month", "api_calls.this_month", o.api_calls.this_month, num(o.api_calls.this_month), num(o.api_calls.denied_this_month) + " denied");
      h += card("MRR", "mrr_cents", o.mrr_cents, money(o.mrr_cents), "monthly plan prices");
      h += card("Overage this period", "overage_revenue_cents", o.overage_revenue_cents, money(o.overage_revenue_cents),
        billed == null ? "billing not wired" : "billed <span data-k=\"overage_billed_cents\" data-value=\"" + billed + "\">" + money(billed) +
          "</span> · to bill <span data-k=\"overage_unbilled_cents\" data-value=\"" + unbilled + "\">" + money(unbilled) + "</span>");
      h += card("At or near limit", "accounts_near_limit", o.accounts_near_limit, num(o.accounts_near_limit),
        "<span data-k=\"accounts_at_limit\" data-value=\"" + o.accounts_at_limit + "\">" + num(o.accounts_at_limit) + "</span> at limit · " +
        "<span data-k=\"accounts_in_overage\" data-value=\"" + o.accounts_in_overage + "\">" + num(o.accounts_in_overage) + "</span> in overage");
      h += "</div>";
      h += "<section class=panel aria-labelledby=hist-title><h2 id=hist-title>Calls per day, last 30 days, by plan</h2><div id=chart-history class=chart role=img aria-label=\"Calls per day by plan\"></div><div id=hist-table></div></section>";
      h += "<section class=panel aria-labelledby=near-title><h2 id=near-title>Accounts at or near their limit</h2><div id=near><p class=muted>Loading…</p></div></section>";
      h += "<section class=panel aria-labelledby=health-title><h2 id=health-title>System health</h2><div id=health><p class=muted>Loading…</p></div></section>";
      setView("overview", "Overview", h);
      // First paint of the numbers: recorded for the performance test.
      M.overviewRenderMs = performance.now() - started;
      requestAnimationFrame(function () {
        M.overviewPaintAt = performance.now();
        view.setAttribute("data-paint-at", M.overviewPaintAt.toFixed(1));
      });
      return Promise.all([loadHistory().catch(panelError("#chart-history")), loadNear().catch(panelError("#near")),
        loadHealth().catch(panelError("#health"))]);
    });
  }

  function panelError(sel) {
    return function (e) { var el = $(sel); if (el) el.innerHTML = "<p class=error>" + esc(M.errorText(e)) + "</p>"; };
  }

  function loadHistory() {
    return M.api("/api/admin/analytics/history?days=30").then(function (hb) {
      var series = hb.plan_order.map(function (p, i) { return { label: p, values: hb.plans[p], color: M.planColors[i % M.planColors.length] }; });
      if (hb.other.some(function (v) { return v > 0; })) series.push({ label: "other", values: hb.other, color: "#9aa3b2" });
      return M.chartLib.then(function () { drawHistory(hb, series); });
    });
  }

  function drawHistory(hb, series) {
    var el = $("#chart-history");
    if (!el) return;
    M.barChart("overview-history", el, hb.dates, series, true);
    el.setAttribute("aria-label", "Calls per day by plan for the last " + hb.days + " days; " + num(hb.total.reduce(function (a, b) { return a + b; }, 0)) + " in all");
    $("#hist-table").innerHTML = M.chartTable("Calls per day", hb.dates, series.concat([{ label: "total", values: hb.total }]));
  }

  function loadNear() {
    return M.api("/api/admin/analytics/users?sort=usage&limit=10").then(function (page) {
      var rows = page.users.filter(function (u) { return u.limit != null && u.usage_percentage >= 80; });
      var el = $("#near");
      if (!el) return;
      el.innerHTML = rows.length ? usersTable(rows) : "<p class=muted>No account is at 80% of its limit or more.</p>";
    });
  }

  function loadHealth() {
    return M.api("/api/admin/health").then(function (hb) {
      var el = $("#health");
      if (!el) return;
      var h = "<table><tbody>";
      var led = hb.checks.ledger;
      if (led) h += "<tr><th scope=row>Ledger queue</th><td data-k=\"queue_depth\">" + num(led.detail.queue_depth) + " writes waiting</td><td>" + badge(led.ok) + "</td></tr>";
      var ex = hb.checks.postgres_export;
      if (ex) {
        var d = ex.detail || {};
        h += "<tr><th scope=row>Postgres export</th><td>" + (d.error ? esc(d.error) : num(d.backlog_events) + " events behind · lag " +
          (d.lag_seconds || 0).toFixed(1) + " s" + (d.last_error ? " · last error: " + esc(d.last_error) : "")) + "</td><td>" +
          badge(!d.error && !d.over_bound && !d.last_error) + "</td></tr>";
      } else {
        h += "<tr><th scope=row>Postgres export</th><td class=muted>off (no --database-url)</td><td></td></tr>";
      }
      var b = hb.billing;
      if (!b.enabled) h += "<tr><th scope=row>Billing</th><td class=muted>disabled (no Stripe key)</td><td></td></tr>";
      else if (!b.last_run) h += "<tr><th scope=row>Last billing run</th><td class=muted>none since start</td><td></td></tr>";
      else h += "<tr><th scope=row>Last billing run</th><td>" + esc(M.date(b.last_run.finished_at)) + " · " + num(b.last_run.charges) + " charges, " +
        money(b.last_run.charged_cents) + (b.last_run_error ? " · " + esc(b.last_run_error) : "") + "</td><td>" + badge(b.last_run_ok) + "</td></tr>";
      el.innerHTML = h + "</tbody></table>";
    });
  }

  function badge(ok) { return ok ? "<span class=\"badge good\">ok</span>" : "<span class=\"badge bad\">attention</span>"; }

  // ---- Accounts ----

  function usersTable(users) {
    var h = "<table><caption class=sr-only>Accounts</caption><thead><tr><th scope=col>Account</th><th scope=col>Plan</th><th scope=col class=num>Calls</th>" +
      "<th scope=col class=\"num hide-narrow\">Limit</th><th scope=col class=num>Used</th><th scope=col class=\"num hide-narrow\">Overage</th></tr></thead><tbody>";
    users.forEach(function (u) {
      h += "<tr data-account=\"" + esc(u.account_id) + "\"><td><a href=\"#/accounts/" + encodeURIComponent(u.account_id) + "\">" + esc(u.name || u.account_id) +
        "</a><div class=\"muted hide-narrow\">" + esc(u.email) + "</div></td><td>" + esc(u.plan) + "</td><td class=num>" + num(u.api_calls) +
        "</td><td class=\"num hide-narrow\">" + (u.limit == null ? "∞" : num(u.limit)) + "</td><td class=num>" + (u.limit == null ? "—" : M.pct(u.usage_percentage)) +
        "</td><td class=\"num hide-narrow\">" + money(u.overage_cost_cents) + "</td></tr>";
    });
    return h + "</tbody></table>";
  }

  var list = { q: "", plan: "", sort: "usage", order: "", cursors: [""], page: 0 };

  function accountsView() {
    return plans().then(function (ps) {
      var h = "<h1>Accounts</h1><form id=filter class=\"panel row\" role=search>" +
        "<div class=field><label for=q>Search</label><input id=q type=search value=\"" + esc(list.q) + "\" placeholder=\"id, name or email\"></div>" +
        "<div class=field><label for=plan>Plan</label><select id=plan><option value=\"\">all</option>" +
        ps.map(function (p) { return "<option" + (p === list.plan ? " selected" : "") + ">" + esc(p) + "</option>"; }).join("") + "</select></div>" +
        "<div class=field><label for=sort>Sort by</label><select id=sort>" + ["usage", "calls", "name", "created"].map(function (s) {
          return "<option" + (s === list.sort ? " selected" : "") + ">" + s + "</option>"; }).join("") + "</select></div>" +
        "<div class=field><label for=order>Order</label><select id=order><option value=\"\">default</option><option value=asc" + (list.order === "asc" ? " selected" : "") +
        ">ascending</option><option value=desc" + (list.order === "desc" ? " selected" : "") + ">descending</option></select></div>" +
        "<button type=submit id=filter-apply>Apply</button></form>" +
        "<section class=panel aria-labelledby=list-title><h2 id=list-title>Accounts</h2><div id=users></div>" +
        "<div class=pager><button type=button class=secondary id=prev>Previous</button><span id=pageno class=muted></span><button type=button class=secondary id=next>Next</button></div></section>" +
        "<section class=panel aria-labelledby=new-title><h2 id=new-title>New account</h2><form id=create class=row>" +
        "<div class=field><label for=new-name>Name</label><input id=new-name required></div>" +
        "<div class=field><label for=new-email>Email</label><input id=new-email type=email></div>" +
        "<div class=field><label for=new-id>Id (optional)</label><input id=new-id></div>" +
        "<div class=field><label for=new-plan>Plan</label><select id=new-plan>" + ps.map(function (p) { return "<option>" + esc(p) + "</option>"; }).join("") + "</select></div>" +
        "<button type=submit id=create-submit>Create account</button></form><p id=create-error class=error role=alert></p></section>";
      setView("accounts", "Accounts", h);
      on("#filter", "submit", function (ev) {
        ev.preventDefault();
        list.q = $("#q").value; list.plan = $("#plan").value; list.sort = $("#sort").value; list.order = $("#order").value;
        list.cursors = [""]; list.page = 0;
        loadUsers().catch(fail);
      });
      on("#prev", "click", function () { if (list.page > 0) { list.page--; loadUsers().catch(fail); } });
      on("#next", "click", function () { list.page++; loadUsers().catch(fail); });
      on("#create", "submit", function (ev) {
        ev.preventDefault();
        var body = { name: $("#new-name").value, email: $("#new-email").value, plan: $("#new-plan").value };
        if ($("#new-id").value) body.id = $("#new-id").value;
        M.api("/api/admin/accounts", { method: "POST", body: body }).then(function (a) {
          location.hash = "#/accounts/" + encodeURIComponent(a.id);
        }, function (e) { $("#create-error").textContent = M.errorText(e); });
      });
      return loadUsers();
    });
  }

  function loadUsers() {
    var qs = "limit=25&sort=" + encodeURIComponent(list.sort) + (list.order ? "&order=" + list.order : "") +
      (list.plan ? "&plan=" + encodeURIComponent(list.plan) : "") + (list.q ? "&q=" + encodeURIComponent(list.q) : "") +
      (list.cursors[list.page] ? "&cursor=" + encodeURIComponent(list.cursors[list.page]) : "");
    return M.api("/api/admin/analytics/users?" + qs).then(function (page) {
      var el = $("#users");
      if (!el) return;
      el.innerHTML = page.users.length ? usersTable(page.users) : "<p class=muted>No accounts match.</p>";
      list.cursors[list.page + 1] = page.next_cursor || "";
      $("#prev").disabled = list.page === 0;
      $("#next").disabled = !page.next_cursor;
      $("#pageno").textContent = "Page " + (list.page + 1);
    });
  }

  // ---- One account ----

  function accountView(id) {
    var enc = encodeURIComponent(id);
    return Promise.all([M.api("/api/admin/accounts/" + enc), M.api("/api/usage/current?account_id=" + enc), plans()]).then(function (r) {
      var a = r[0], q = r[1], ps = r[2];
      a.period_month = q.period_start.slice(0, 7);
      var h = "<p><a href=\"#/accounts\">← Accounts</a></p><h1>" + esc(a.name || a.id) + "</h1>" +
        "<p class=muted>id <code data-k=account_id>" + esc(a.id) + "</code> · " + esc(a.email || "no email") +
        (a.stripe_customer_id ? " · Stripe <code>" + esc(a.stripe_customer_id) + "</code>" : "") + " · created " + esc(M.date(a.created_at)) + "</p>" +
        "<div class=\"grid wide\"><section class=card aria-labelledby=cur-title><h2 id=cur-title class=label>This period</h2><div id=gauge>" + M.gauge(q) + "</div></section>" +
        "<section class=card aria-labelledby=plan-title><h2 id=plan-title class=label>Plan</h2><form id=plan-form>" +
        "<div class=field><label for=plan-select>Plan</label><select id=plan-select>" + ps.map(function (p) {
          return "<option" + (p === a.plan ? " selected" : "") + ">" + esc(p) + "</option>"; }).join("") + "</select></div>" +
        "<div class=field><label for=plan-when>Downgrades take effect</label><select id=plan-when><option value=\"\">at the period's end</option><option value=now>now</option></select></div>" +
        "<p><button type=submit id=plan-submit>Change plan</button></p></form><div id=pending>" + pendingHTML(a) + "</div><p id=plan-msg role=status></p></section></div>" +
        "<section class=panel aria-labelledby=ahist-title><h2 id=ahist-title>Calls per day, last 30 days</h2><div id=chart-account class=chart role=img aria-label=\"Calls per day\"></div><div id=ahist-table></div></section>" +
        "<section class=panel aria-labelledby=ep-title><h2 id=ep-title>Endpoints, last 30 days</h2><div id=endpoints><p class=muted>Loading…</p></div></section>" +
        "<section class=panel aria-labelledby=keys-title><h2 id=keys-title>API keys</h2><div id=keys>" + keysHTML(a.keys) + "</div>" +
        "<p><button type=button id=issue-key>Issue a key</button></p><div id=new-key></div></section>" +
        "<section class=panel aria-labelledby=portal-title><h2 id=portal-title>Customer usage page</h2>" +
        "<p class=muted>A portal token lets this customer see this account's usage (read only) without its API key.</p>" +
        "<div class=row><div class=field><label for=portal-ttl>Valid for</label><select id=portal-ttl><option value=3600>1 hour</option><option value=86400>24 hours</option><option value=600>10 minutes</option></select></div>" +
        "<button type=button id=portal-make class=secondary>Make a portal link</button></div><div id=portal-out></div></section>" +
        "<section class=panel aria-labelledby=ch-title><h2 id=ch-title>Billing charges</h2><div id=charges><p class=muted>Loading…</p></div></section>";
      setView("account", a.name || a.id, h);
      wireAccount(a);
      return Promise.all([
        M.api("/api/usage/history?days=30&account_id=" + enc).then(function (hb) {
          var dates = hb.days.map(function (d) { return d.date; });
          var series = [{ label: "calls", values: hb.days.map(function (d) { return d.api_calls; }), color: "#1d5fd1" },
            { label: "denied", values: hb.days.map(function (d) { return d.denied_calls; }), color: "#b3261e" }];
          $("#ahist-table").innerHTML = M.chartTable("Calls per day", dates, series);
          return M.chartLib.then(function () { M.barChart("account-history", $("#chart-account"), dates, series, true); });
        }).catch(panelError("#chart-account")),
        M.api("/api/usage/endpoints?days=30&account_id=" + enc).then(function (eb) {
          $("#endpoints").innerHTML = M.endpointsTable(eb.endpoints);
        }).catch(panelError("#endpoints")),
        loadAccountCharges(a).catch(panelError("#charges")),
      ]);
    });
  }

  // pendingHTML shows a scheduled plan change when the server reports one
  // (pending_plan / pending_plan_at, from the billing work).
  function pendingHTML(a) {
    if (!a.pending_plan) return "";
    return "<p class=warn>Changes to <strong>" + esc(a.pending_plan) + "</strong> on " + esc(M.date(a.pending_plan_at)) +
      ". <button type=button class=secondary id=pending-cancel>Cancel the change</button></p>";
  }

  function keysHTML(keys) {
    if (!keys.length) return "<p class=muted>No keys yet.</p>";
    var h = "<table><caption class=sr-only>API keys</caption><thead><tr><th scope=col>Key</th><th scope=col class=hide-narrow>Created</th><th scope=col>State</th><th scope=col><span class=sr-only>Action</span></th></tr></thead><tbody>";
    keys.forEach(function (k) {
      h += "<tr data-key=\"" + esc(k.id) + "\"><td><code>" + esc(k.prefix) + "…</code></td><td class=hide-narrow>" + esc(M.date(k.created_at)) + "</td><td>" +
        (k.revoked_at ? "<span class=\"badge bad\">revoked</span>" : "<span class=\"badge good\">active</span>") + "</td><td>" +
        (k.revoked_at ? "" : "<button type=button class=danger data-revoke=\"" + esc(k.id) + "\" aria-label=\"Revoke key " + esc(k.prefix) + "\">Revoke</button>") + "</td></tr>";
    });
    return h + "</tbody></table>";
  }

  function reloadKeys(a) {
    return M.api("/api/admin/accounts/" + encodeURIComponent(a.id)).then(function (fresh) {
      $("#keys").innerHTML = keysHTML(fresh.keys);
    });
  }

  function wireAccount(a) {
    var enc = encodeURIComponent(a.id);
    on("#issue-key", "click", function () {
      M.api("/api/admin/accounts/" + enc + "/keys", { method: "POST" }).then(function (k) {
        // The plaintext is shown here once and kept nowhere else.
        $("#new-key").innerHTML = "<p><strong>Copy this key now: it is not shown again.</strong></p><p class=secret id=new-key-value>" + esc(k.key) +
          "</p><button type=button class=secondary id=new-key-done>I have copied it</button>";
        on("#new-key-done", "click", function () { $("#new-key").textContent = ""; $("#issue-key").focus(); });
        $("#new-key-done").focus();
        return reloadKeys(a);
      }).catch(function (e) { $("#new-key").innerHTML = "<p class=error role=alert>" + esc(M.errorText(e)) + "</p>"; });
    });
    $("#keys").addEventListener("click", function (ev) {
      var id = ev.target.getAttribute && ev.target.getAttribute("data-revoke");
      if (!id) return;
      if (!window.confirm("Revoke this key? Calls with it will be refused at once.")) return;
      M.api("/api/admin/keys/" + encodeURIComponent(id), { method: "DELETE" }).then(function () { return reloadKeys(a); })
        .catch(function (e) { $("#new-key").innerHTML = "<p class=error role=alert>" + esc(M.errorText(e)) + "</p>"; });
    });
    on("#plan-form", "submit", function (ev) {
      ev.preventDefault();
      var body = { plan: $("#plan-select").value };
      if ($("#plan-when").value === "now") body.effective = "now";
      M.api("/api/admin/accounts/" + enc, { method: "PATCH", body: body }).then(function (fresh) {
        $("#plan-msg").textContent = fresh.pending_plan ? "Scheduled: " + fresh.pending_plan + " from " + M.date(fresh.pending_plan_at) + "." : "Plan is now " + fresh.plan + ".";
        $("#pending").innerHTML = pendingHTML(fresh);
        return M.api("/api/usage/current?account_id=" + enc).then(function (q) { $("#gauge").innerHTML = M.gauge(q); });
      }, function (e) {
        $("#plan-msg").textContent = e.code === "invalid_request" && body.effective ?
          "This server applies plan changes at once; choose \"at the period's end\" to change it now." : M.errorText(e);
      });
    });
    $("#pending").addEventListener("click", function (ev) {
      if (ev.target.id !== "pending-cancel") return;
      M.api("/api/admin/accounts/" + enc + "/pending-plan", { method: "DELETE" }).then(function () {
        $("#pending").textContent = ""; $("#plan-msg").textContent = "Scheduled change cancelled.";
      }, function (e) {
        $("#plan-msg").textContent = e.status === 404 || e.status === 405 ? "Cancelling a scheduled change is not available on this server." : M.errorText(e);
      });
    });
    on("#portal-make", "click", function () {
      M.api("/api/admin/accounts/" + enc + "/portal-token", { method: "POST", body: { ttl_seconds: Number($("#portal-ttl").value) } }).then(function (t) {
        var url = location.origin + "/ui/usage#token=" + encodeURIComponent(t.token);
        $("#portal-out").innerHTML = "<p>Valid until " + esc(M.date(t.expires_at)) + ". Give it only to this customer.</p>" +
          "<p><a id=portal-link href=\"" + esc(url) + "\" target=_blank rel=noopener>Open the usage page</a></p>" +
          "<label for=portal-embed>Embed in your product</label><pre id=portal-embed tabindex=0>" +
          esc("<iframe src=\"" + url + "\" title=\"API usage\" width=\"100%\" height=\"720\" style=\"border:0\"></iframe>") + "</pre>";
      }, function (e) { $("#portal-out").innerHTML = "<p class=error role=alert>" + esc(M.errorText(e)) + "</p>"; });
    });
  }

  function loadAccountCharges(a) {
    return M.api("/api/admin/billing/charges?period=" + encodeURIComponent(a.period_month)).then(function (cb) {
      var rows = cb.charges.filter(function (c) { return c.account_id === a.id; });
      $("#charges").innerHTML = rows.length ? chargesTable(rows) : "<p class=muted>No charges for " + esc(cb.period) + ".</p>";
    }, function (e) {
      if (e.code === "billing_disabled") { $("#charges").innerHTML = "<p class=muted>Billing is disabled on this server (no Stripe key).</p>"; return; }
      throw e;
    });
  }

  // ---- Billing ----

  function chargesTable(rows) {
    var h = "<table><caption class=sr-only>Charges</caption><thead><tr><th scope=col>Account</th><th scope=col class=hide-narrow>Period</th><th scope=col class=num>Calls</th>" +
      "<th scope=col class=num>Amount</th><th scope=col>Status</th><th scope=col class=hide-narrow>Stripe</th></tr></thead><tbody>";
    rows.forEach(function (c) {
      var ids = [c.stripe_id, c.stripe_customer_id].filter(Boolean).map(function (s) { return "<code>" + esc(s) + "</code>"; }).join("<br>");
      h += "<tr><td><a href=\"#/accounts/" + encodeURIComponent(c.account_id) + "\">" + esc(c.account_id) + "</a></td><td class=hide-narrow>" +
        esc(String(c.period_start || "").slice(0, 10)) + "</td><td class=num>" + num(c.calls != null ? c.calls : c.overage_calls) + "</td><td class=num>" + money(c.amount_cents) +
        "</td><td><span class=badge>" + esc(c.status) + "</span>" + (c.last_error ? "<div class=\"error\">" + esc(c.last_error) + "</div>" : "") +
        "</td><td class=hide-narrow>" + (ids || "—") + "</td></tr>";
    });
    return h + "</tbody></table>";
  }

  // reportTable shows a billing report's lines (preview, dry run).
  function reportTable(rep) {
    if (!rep.accounts.length) return "<p class=muted>Nothing to bill.</p>";
    var h = "<table><caption class=sr-only>Billing lines</caption><thead><tr><th scope=col>Account</th><th scope=col>Plan</th><th scope=col>Status</th>" +
      "<th scope=col class=num>Overage calls</th><th scope=col class=num>Billable</th><th scope=col class=\"num hide-narrow\">Billed</th>" +
      "<th scope=col class=num>This run</th><th scope=col class=\"num hide-narrow\">Projected</th></tr></thead><tbody>";
    rep.accounts.forEach(function (l) {
      h += "<tr><td><a href=\"#/accounts/" + encodeURIComponent(l.account_id) + "\">" + esc(l.account_id) + "</a></td><td>" + esc(l.plan) +
        "</td><td>" + esc(l.status.replace(/_/g, " ")) + (l.reason ? "<div class=muted>" + esc(l.reason) + "</div>" : "") + (l.error ? "<div class=error>" + esc(l.error) + "</div>" : "") +
        "</td><td class=num>" + num(l.overage_calls) + "</td><td class=num>" + money(l.billable_cents) + "</td><td class=\"num hide-narrow\">" + money(l.billed_cents) +
        "</td><td class=num>" + money(l.charge_cents) + "</td><td class=\"num hide-narrow\">" + money(l.projected_cents) + "</td></tr>";
    });
    return h + "</tbody></table>";
  }

  // genericTable shows rows of unknown shape (the reconcile report, whose
  // fields the billing work defines).
  function genericTable(rep) {
    var keys = Object.keys(rep.accounts[0]);
    var h = "<table><thead><tr>" + keys.map(function (k) { return "<th scope=col>" + esc(k.replace(/_/g, " ")) + "</th>"; }).join("") + "</tr></thead><tbody>";
    rep.accounts.forEach(function (l) {
      h += "<tr>" + keys.map(function (k) {
        var v = l[k];
        if (/_cents$/.test(k)) v = money(v); else if (typeof v === "number") v = num(v); else if (v && typeof v === "object") v = JSON.stringify(v);
        return "<td>" + esc(v) + "</td>";
      }).join("") + "</tr>";
    });
    return h + "</tbody></table>";
  }

  function billingView() {
    var h = "<h1>Billing</h1>" +
      "<section class=panel aria-labelledby=pv-title><h2 id=pv-title>Preview: what a run would charge now</h2><div id=preview><p class=muted>Loading…</p></div>" +
      "<p><button type=button id=dry-run class=secondary>Dry run</button></p><div id=dry-out role=status></div></section>" +
      "<section class=panel aria-labelledby=cm-title><h2 id=cm-title>Charges</h2><form id=month-form class=row><div class=field><label for=month>Month</label>" +
      "<input id=month type=month></div><button type=submit>Show</button></form><div id=month-sum></div><div id=month-charges></div></section>" +
      "<section class=panel aria-labelledby=rc-title><h2 id=rc-title>Reconcile with Stripe</h2><div id=reconcile><p class=muted>Loading…</p></div></section>";
    setView("billing", "Billing", h);
    on("#dry-run", "click", function () {
      $("#dry-out").textContent = "Running…";
      M.api("/api/cron/process-overage?dry_run=true", { method: "POST" }).then(function (rep) {
        $("#dry-out").innerHTML = "<p>Dry run: would charge " + money(rep.charged_cents) + " in " + num(rep.charges) + " invoice items; nothing was sent.</p>" + reportTable(rep);
      }, function (e) { $("#dry-out").innerHTML = "<p class=error>" + esc(billingError(e)) + "</p>"; });
    });
    on("#month-form", "submit", function (ev) { ev.preventDefault(); loadMonth().catch(panelError("#month-charges")); });
    return Promise.all([
      M.api("/api/admin/billing/preview").then(function (rep) {
        $("#preview").innerHTML = "<p>Would charge <strong data-k=preview_cents data-value=\"" + rep.charged_cents + "\">" + money(rep.charged_cents) + "</strong> in " +
          num(rep.charges) + " invoice items.</p>" + reportTable(rep);
      }, function (e) { $("#preview").innerHTML = "<p class=muted>" + esc(billingError(e)) + "</p>"; }),
      loadMonth().catch(panelError("#month-charges")).then(loadReconcile),
    ]);
  }

  function billingError(e) {
    return e.code === "billing_disabled" ? "Billing is disabled on this server: no Stripe secret key is configured." : M.errorText(e);
  }

  function loadMonth() {
    var month = $("#month").value;
    return M.api("/api/admin/billing/charges" + (month ? "?period=" + encodeURIComponent(month) : "")).then(function (cb) {
      $("#month").value = cb.period;
      $("#month-sum").innerHTML = "<p>Billed " + money(cb.billed_cents) + " · pending " + money(cb.pending_cents) + "</p>";
      $("#month-charges").innerHTML = cb.charges.length ? chargesTable(cb.charges) : "<p class=muted>No charges for " + esc(cb.period) + ".</p>";
    }, function (e) { $("#month-charges").innerHTML = "<p class=muted>" + esc(billingError(e)) + "</p>"; });
  }

  // loadReconcile shows the reconcile report (GET
  // /api/admin/billing/reconcile) where the server has it; older servers
  // answer 404 and the panel says so.
  function loadReconcile() {
    var month = $("#month").value;
    return M.api("/api/admin/billing/reconcile" + (month ? "?period=" + encodeURIComponent(month) : "")).then(function (rep) {
      var rows = rep.accounts || rep.lines || [];
      $("#reconcile").innerHTML = rows.length ? genericTable({ accounts: rows }) : "<p class=muted>Nothing to reconcile" + (month ? " for " + esc(month) : "") + ".</p>";
    }, function (e) {
      $("#reconcile").innerHTML = "<p class=muted>" + (e.status === 404 ? "The reconcile report is not available on this server." : esc(billingError(e))) + "</p>";
    });
  }

  route();
})();
