// The console's base: the session (who is logged in, the CSRF token), calls
// of the admin API with the session cookie, and building DOM nodes (text is
// always set as text, never parsed as HTML).
"use strict";
const J = {
  session: null,  // {user, role, csrf}
  roles: ["viewer", "operator", "admin"],
};

// Whether the engine has a route (and that query parameter): the console offers
// only what the engine it runs on can do. J.openapi is loaded at the login.
J.openapi = null;
J.has = (method, pattern, param) => {
  const op = J.openapi && J.openapi.paths[pattern] && J.openapi.paths[pattern][method.toLowerCase()];
  return Boolean(op) && (!param || (op.parameters || []).some((p) => p.name === param));
};

// True when the logged-in user has at least `role`.
J.may = (role) => J.session && J.roles.indexOf(J.session.role) >= J.roles.indexOf(role);

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
J.ApiError = ApiError;

// A call of the admin API: JSON in and out. 401 shows the login page.
J.api = async (method, path, body) => {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = J.session ? J.session.csrf : "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, credentials: "same-origin",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!r.ok) {
    if (r.status === 401 && path !== "/api/v1/session" && J.onLoggedOut) J.onLoggedOut();
    throw new ApiError(r.status, data && data.error ? data.error : r.status + " " + r.statusText);
  }
  return data;
};

// A query string of the non-empty values of `params`.
J.query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
};

// h("div", {class: "x", onclick: f}, "text", child, [more]) → an element.
J.h = (tag, attrs, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...J.nodes(children));
  return el;
};

// Children as nodes: nested arrays flattened, null, undefined and false left out, the rest as text.
J.nodes = (children) => children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false)
  .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
// Replaces the children of `el`.
J.put = (el, ...children) => el.replaceChildren(...J.nodes(children));

J.state = (s) => J.h("span", { class: "state " + s }, s);
J.time = (iso) => (iso ? new Date(iso).toLocaleString() : "");
J.link = (href, text) => J.h("a", { href }, text);
// A button shown only to a user with `role` (a viewer sees no mutating button).
J.action = (role, label, onclick, cls) =>
  J.may(role) ? J.h("button", { type: "button", class: cls, "data-action": label.toLowerCase(), onclick }, label) : null;
// An error as a paragraph.
J.problem = (e) => J.h("p", { class: "error", role: "alert" }, e.message || String(e));
