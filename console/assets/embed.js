// Embeds meterd's customer usage page in another site:
//   <script src="https://METERD/ui/static/embed.js" data-token="mpt_..." async></script>
// puts an <iframe> of /ui/usage right after the script element. The
// portal token travels in the URL fragment, which is never sent to a
// server or put in a Referer. Optional: data-height (pixels, default 720),
// data-title (the frame's accessible name).
(function () {
  "use strict";
  var s = document.currentScript;
  if (!s) return;
  var base = new URL(s.src, location.href);
  var f = document.createElement("iframe");
  f.src = base.origin + "/ui/usage#token=" + encodeURIComponent(s.getAttribute("data-token") || "");
  f.title = s.getAttribute("data-title") || "API usage";
  f.width = "100%";
  f.height = s.getAttribute("data-height") || "720";
  f.style.border = "0";
  f.setAttribute("referrerpolicy", "no-referrer");
  s.parentNode.insertBefore(f, s.nextSibling);
})();
