// The console's start: the login, the header, and the route of the location's
// hash (#/messages?channel=x) to a view.
"use strict";
(() => {
  const { h, api } = J;
  const main = document.getElementById("main");
  const top = document.getElementById("top");
  const login = document.getElementById("login");
  let stopView = null;

  const ROUTES = [
    [/^#?\/?$/, "dashboard"], [/^#\/messages$/, "messages"], [/^#\/message\/(?<id>\d+)$/, "message"],
    [/^#\/channel\/(?<name>[^/]+)$/, "channel"], [/^#\/worklist$/, "worklist"], [/^#\/events$/, "events"],
    [/^#\/alerts$/, "alerts"], [/^#\/users$/, "users"],
  ];

  const show = () => {
    if (!J.session) return;
    if (stopView) { stopView(); stopView = null; }
    const [path, query] = location.hash.split("?");
    const params = Object.fromEntries(new URLSearchParams(query || ""));
    for (const a of document.querySelectorAll("#nav a"))
      a.classList.toggle("active", a.getAttribute("href") === (path || "#/") || (path.startsWith("#/message") && a.getAttribute("href") === "#/messages"));
    for (const [re, view] of ROUTES) {
      const m = re.exec(path);
      if (!m) continue;
      Object.assign(params, m.groups ? Object.fromEntries(Object.entries(m.groups).map(([k, v]) => [k, decodeURIComponent(v)])) : {});
      const r = J.views[view](main, params);
      if (typeof r === "function") stopView = r;
      return;
    }
    J.put(main, h("p", { class: "error" }, "No such page."));
  };

  const enter = async (session) => {
    J.session = session;
    try { J.openapi = await api("GET", "/api/v1/openapi.json"); } catch (e) { J.openapi = null; }
    login.hidden = true;
    top.hidden = false;
    document.getElementById("who").textContent = `${session.user} (${session.role})`;
    for (const a of document.querySelectorAll("#nav a"))
      a.hidden = (a.dataset.role && !J.may(a.dataset.role)) || (a.dataset.route && !J.has("GET", a.dataset.route));
    show();
  };
  J.onLoggedOut = () => {
    if (stopView) { stopView(); stopView = null; }
    J.session = null;
    top.hidden = true;
    J.put(main);
    login.hidden = false;
  };

  document.getElementById("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const error = document.getElementById("login-error");
    error.textContent = "";
    try {
      enter(await api("POST", "/api/v1/session", { user: f.elements.user.value, password: f.elements.password.value }));
      f.elements.password.value = "";
    } catch (e) { error.textContent = e.message; }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try { await api("DELETE", "/api/v1/session"); } catch (e) { /* ended already */ }
    J.onLoggedOut();
  });
  window.addEventListener("hashchange", show);
  // A reload keeps the login (the cookie): the session's CSRF token comes back here.
  api("GET", "/api/v1/session").then(enter, () => J.onLoggedOut());
})();
