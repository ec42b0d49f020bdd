// The console's views: each takes the main element and the route's
// parameters, fills it, and may return a function that stops its polling.
"use strict";
J.views = {};
(() => {
  const { h, api, may, state, time, link, action, problem } = J;
  const COUNTERS = ["received", "filtered", "queued", "sent", "errored", "retried"];
  const enc = encodeURIComponent;

  // A channel's or destination's counters as "received 12 · sent 11 ...".
  const counters = (c, name) => h("div", { class: "counters", "data-counters": name },
    COUNTERS.map((k) => h("span", {}, k + " ", h("b", { "data-counter": k }, String(c ? c[k] || 0 : 0)))));

  // ---- dashboard: every channel, polled every 2 s; the sparkline each minute.
  J.views.dashboard = (main) => {
    const list = h("div", { id: "channels" });
    const status = h("p", { class: "muted", id: "updated" });
    J.put(main, h("h2", {}, "Channels"), status, list);
    const series = new Map();  // channel → values of the last hour
    let seriesMissing = !J.has("GET", "/api/v1/stats/series"), seriesAt = 0, timer = null, stopped = false;

    const loadSeries = async (names) => {
      if (seriesMissing || Date.now() - seriesAt < 60000) return;
      seriesAt = Date.now();
      for (const n of names) {
        try {
          const s = await api("GET", "/api/v1/stats/series" + J.query({ channel: n, minutes: 60 }));
          series.set(n, (s.minutes || []).map((m) => m.received || 0));
        } catch (e) {
          if (e.status === 404) { seriesMissing = true; return; }  // an engine without the series: nothing shown
        }
      }
    };
    const card = (c) => {
      const errors = (c.counters && c.counters.errored > 0) || c.state === "failed" ||
                     c.destinations.some((d) => d.state === "failing");
      const src = c.source || {};
      return h("div", { class: "card" + (errors ? " has-errors" : ""), "data-channel": c.name },
        h("div", { class: "card-head" },
          h("h3", {}, link("#/channel/" + enc(c.name), c.name)), state(c.state),
          errors ? link("#/messages" + J.query({ channel: c.name, status: "ERROR" }), "errors") : null,
          series.has(c.name) ? J.sparkline(series.get(c.name), "received per minute, last hour") : null),
        c.error ? h("p", { class: "error" }, c.error) : null,
        counters(c.counters, c.name),
        h("div", { class: "muted", "data-source": "" }, `source ${src.address || src.type || ""}: `, state(src.state || c.state),
          src.connections !== undefined && src.connections !== null ? h("span", { "data-connections": src.connections },
            ` listening, ${src.connections} connected`) : null,
          src.back_pressure ? [" ", state("back-pressure")] : null, src.problem ? h("span", { class: "error" }, " " + src.problem) : null),
        c.destinations.length ? h("table", {},
          h("tr", {}, h("th", {}, "destination"), h("th", {}, "state"), h("th", { class: "num" }, "queued"),
            h("th", { class: "num" }, "sent"), h("th", { class: "num" }, "errored"), h("th", {}, "last error")),
          c.destinations.map((d) => h("tr", { "data-destination": d.name },
            h("td", {}, d.name), h("td", {}, state(d.state === "failing" ? "retrying" : "up")),
            h("td", { class: "num", "data-queued": "" }, String(d.queued)),
            h("td", { class: "num" }, String(d.counters.sent)), h("td", { class: "num" }, String(d.counters.errored)),
            h("td", { class: "error" }, d.last_error)))) : null);
    };
    const poll = async () => {
      try {
        const data = await api("GET", "/api/v1/channels");
        await loadSeries(data.channels.map((c) => c.name));
        if (stopped) return;
        J.put(list, ...data.channels.map(card));
        status.textContent = "updated " + new Date().toLocaleTimeString();
      } catch (e) {
        J.put(status, problem(e));
      }
      if (!stopped) timer = setTimeout(poll, 2000);
    };
    poll();
    return () => { stopped = true; clearTimeout(timer); };
  };

  // ---- message browser: the search, headers only, paged with `next`.
  const FILTERS = [["channel", "channel"], ["status", "status"], ["type", "type"], ["control_id", "control id"],
                   ["patient_id", "patient id"], ["accession", "accession"], ["destination", "destination"],
                   ["destination_status", "destination status"], ["from", "from"], ["to", "to"], ["text", "text"]];
  const CHOICES = { status: ["", "RECEIVED", "FILTERED", "TRANSFORMED", "QUEUED", "SENT", "ERROR"],
                    destination_status: ["", "QUEUED", "SENT", "ERROR", "FILTERED"] };
  J.views.messages = (main, params) => {
    const fields = FILTERS.filter(([k]) => !J.openapi || J.has("GET", "/api/v1/messages", k));
    // A time of the search as the value of a datetime-local input (local time, to the minute).
    const local = (iso) => {
      const d = new Date(iso);
      return isNaN(d) ? "" : new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    };
    const form = h("form", { class: "filters", id: "search" }, fields.map(([k, label]) => h("label", {}, label,
      CHOICES[k] ? h("select", { name: k }, CHOICES[k].map((s) => h("option", { value: s, selected: params[k] === s }, s || "any")))
        : k === "from" || k === "to" ? h("input", { name: k, value: params[k] ? local(params[k]) : "", type: "datetime-local" })
        : h("input", { name: k, value: params[k] || "", size: 12 }))),
      h("button", { type: "submit", class: "primary" }, "Search"));
    const results = h("div", { id: "results" });
    const bulk = h("div");
    J.put(main, h("h2", {}, "Messages"), form, bulk, results);
    const filters = () => {
      const f = {};
      for (const [k] of fields) {
        let v = form.elements[k].value;
        if (v && (k === "from" || k === "to")) v = new Date(v).toISOString();
        if (v) f[k] = v;
      }
      return f;
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); location.hash = "#/messages" + J.query(filters()); });
    // The search shown: the location's, not what the form holds meanwhile.
    const shown = {};
    for (const [k] of fields) if (params[k]) shown[k] = params[k];
    const table = h("table", { id: "message-list" }, h("tr", {}, ["id", "received", "channel", "status", "type", "control id",
      "patient id", "accession", "error"].map((t) => h("th", {}, t))));
    const more = h("button", { type: "button", id: "more" }, "More");
    J.put(results, table);
    const load = async (before) => {
      try {
        const q = { ...shown, before, limit: 50 };
        const data = await api("GET", "/api/v1/messages" + J.query(q));
        for (const m of data.messages) table.append(h("tr", { "data-id": m.id },
          h("td", {}, link("#/message/" + m.id, "#" + m.id)), h("td", {}, time(m.received)), h("td", {}, m.channel),
          h("td", {}, state(m.status)), h("td", {}, m.type), h("td", {}, m.control_id), h("td", {}, m.patient_id),
          h("td", {}, m.accession), h("td", { class: "error" }, m.error)));
        if (data.messages.length === 0 && !before) results.append(h("p", { class: "muted", id: "none" }, "No message matches."));
        more.remove();
        if (data.next !== null) { more.onclick = () => load(data.next); results.append(more); }
      } catch (e) { results.append(problem(e)); }
    };
    if (may("operator") && J.has("POST", "/api/v1/messages/reprocess")) {
      const go = action("operator", "Reprocess all", () => {
        const n = h("input", { type: "number", min: 1, max: 1000, value: 100, name: "limit" });
        const box = h("div", { class: "confirm" }, "Reprocess up to ", n, " messages matching this search (",
          Object.entries(shown).map(([k, v]) => `${k} ${v}`).join(", ") || "every message",
          ") into their channels again? ",
          h("button", { type: "button", class: "danger", "data-action": "confirm-reprocess", onclick: async () => {
            try {
              const r = await api("POST", "/api/v1/messages/reprocess", { ...shown, limit: Number(n.value), confirm: true });
              J.put(box, `${r.reprocessed} message(s) reprocessed.`);
            } catch (e) { J.put(box, problem(e)); }
          } }, "Yes, reprocess"),
          " ", h("button", { type: "button", onclick: () => box.remove() }, "Cancel"));
        J.put(bulk, box);
      });
      bulk.append(h("div", { class: "toolbar" }, go));
    }
    load(undefined);
  };

  // ---- one message: its path, its stages side by side, the diff, actions.
  J.views.message = async (main, params) => {
    J.put(main, h("p", { class: "muted" }, "loading ..."));
    let m;
    try { m = await api("GET", "/api/v1/messages/" + enc(params.id)); } catch (e) { J.put(main, problem(e)); return; }
    const log = m.log || [];
    const logOf = (stage) => log.filter((l) => l.stage === stage).map((l) => h("li", { class: l.level === "error" ? "error" : "" },
      `${time(l.time)} ${l.text}`));
    const step = (title, st, extra) => h("div", { class: "step", "data-step": title }, h("b", {}, title), " ", st ? state(st) : null, extra);
    const filtered = m.status === "FILTERED";
    // Where it failed: a stage with an error line in its log; without a log, the
    // transform of a message in ERROR that reached no destination.
    const failedIn = (stage) => log.some((l) => l.stage === stage && l.level === "error") ||
      (stage === "transform" && !log.length && m.status === "ERROR" && !m.deliveries.length);
    const path = h("div", { class: "path", id: "path" },
      step("source", "RECEIVED", [h("div", { class: "muted" }, m.source, " ", time(m.received)), h("ul", {}, logOf("source"))]),
      h("span", { class: "arrow" }, "→"),
      step("filter", filtered ? "FILTERED" : failedIn("filter") ? "ERROR" : "passed", h("ul", {}, logOf("filter"))),
      filtered ? null : [h("span", { class: "arrow" }, "→"),
        step("transform", failedIn("transform") ? "ERROR" : m.transformed ? "TRANSFORMED" : "", h("ul", {}, logOf("transform"))),
        m.deliveries.map((d) => [h("span", { class: "arrow" }, "→"),
          step("destination " + d.destination, d.status, [
            h("div", { class: "muted" }, `${d.attempts} attempt(s)`, d.updated ? `, ${time(d.updated)}` : ""),
            d.error ? h("div", { class: "error" }, d.error) : null,
            d.history ? h("ul", {}, d.history.map((a) => h("li", {}, `${time(a.time)} ${a.status}${a.error ? ": " + a.error : ""}`))) : null,
            h("ul", {}, logOf("destination:" + d.destination)),
            J.has("POST", "/api/v1/messages/{id}/resend") && action("operator", "Resend", async (ev) => {
              try {
                await api("POST", `/api/v1/messages/${m.id}/resend`, { destination: d.destination });
                ev.target.replaceWith(h("span", { class: "muted" }, "queued again"));
              } catch (e) { ev.target.replaceWith(problem(e)); }
            })])])]);

    const stages = [["raw", m.raw]];
    if (m.transformed) stages.push(["transformed", m.transformed]);
    for (const d of m.deliveries) if (d.encoded) stages.push(["to " + d.destination, d.encoded]);
    const diffs = [];
    for (let i = 1; i < stages.length; i++) {
      const from = stages[i][0] === "transformed" ? stages[0] : stages.find((s) => s[0] === "transformed") || stages[0];
      if (J.looksHl7(from[1]) && J.looksHl7(stages[i][1])) {
        const lines = J.hl7Diff(from[1], stages[i][1]);
        diffs.push(h("div", { class: "diff", "data-diff": stages[i][0] }, h("b", {}, `${from[0]} → ${stages[i][0]}`),
          lines.length ? h("ul", {}, lines.map((l) => h("li", {}, l))) : h("span", { class: "muted" }, " no change")));
      }
    }
    const actions = h("div", { class: "toolbar" },
      J.has("POST", "/api/v1/messages/{id}/reprocess") && action("operator", "Reprocess", () => {
        const box = h("textarea", { rows: 10, name: "raw" });
        box.value = m.raw;
        const panel = h("div", { class: "confirm", id: "reprocess" }, h("p", {}, "The message goes into ", m.channel,
          " again, as if received (edit it first if needed)."), box,
        h("button", { type: "button", class: "primary", "data-action": "reprocess-send", onclick: async () => {
          try {
            const body = box.value === m.raw ? {} : { raw: box.value };
            const r = await api("POST", `/api/v1/messages/${m.id}/reprocess`, body);
            location.hash = "#/message/" + r.id;
          } catch (e) { panel.append(problem(e)); }
        } }, "Reprocess"), " ", h("button", { type: "button", onclick: () => panel.remove() }, "Cancel"));
        actions.after(panel);
      }),
      J.has("DELETE", "/api/v1/messages/{id}") && action("admin", "Delete", async () => {
        if (!confirm(`Delete message #${m.id}?`)) return;
        try { await api("DELETE", "/api/v1/messages/" + m.id); location.hash = "#/messages"; } catch (e) { actions.append(problem(e)); }
      }, "danger"));
    J.put(main,
      h("h2", {}, `Message #${m.id} `, state(m.status)),
      h("p", {}, `${m.type || m.data_type} · channel `, link("#/channel/" + enc(m.channel), m.channel),
        m.control_id ? ` · control id ${m.control_id}` : "", m.patient_id ? ` · patient ${m.patient_id}` : "",
        m.accession ? ` · accession ${m.accession}` : "",
        m.original ? [" · reprocess of ", link("#/message/" + m.original, "#" + m.original)] : "",
        m.copies && m.copies.length ? [" · reprocessed as ", m.copies.map((c) => [link("#/message/" + c, "#" + c), " "])] : ""),
      m.error ? h("p", { class: "error" }, m.error) : null,
      actions, path, diffs,
      h("div", { class: "stages", id: "stages" }, stages.map(([name, text]) =>
        h("div", { class: "stage", "data-stage": name }, h("h3", {}, name), J.contentView(text)))));
  };

  // ---- one channel: state and actions, destinations, files, last errors.
  J.views.channel = async (main, params) => {
    let c;
    try { c = await api("GET", "/api/v1/channels/" + enc(params.name)); } catch (e) { J.put(main, problem(e)); return; }
    const act = (verb, role) => action(role, verb[0].toUpperCase() + verb.slice(1), async () => {
      try { await api("POST", `/api/v1/channels/${enc(c.name)}/${verb}`); J.views.channel(main, params); }
      catch (e) { main.prepend(problem(e)); }
    });
    const errors = h("div", {}, h("p", { class: "muted" }, "loading ..."));
    J.put(main,
      h("h2", {}, c.name, " ", h("span", { id: "channel-state" }, state(c.state))),
      c.description ? h("p", {}, c.description) : null,
      c.error ? h("p", { class: "error" }, c.error) : null,
      h("div", { class: "toolbar" }, act("start", "operator"), act("stop", "operator"), act("pause", "operator"),
        act("resume", "operator"), act("redeploy", "admin")),
      counters(c.counters, c.name),
      h("table", {}, h("tr", {}, ["destination", "type", "state", "waiting", ...COUNTERS, "last error"].map((t) => h("th", {}, t))),
        c.destinations.map((d) => h("tr", {}, h("td", {}, d.name), h("td", {}, d.type), h("td", {}, state(d.state)),
          h("td", { class: "num" }, String(d.queued)), COUNTERS.map((k) => h("td", { class: "num" }, String(d.counters[k]))),
          h("td", { class: "error" }, d.last_error)))),
      h("h3", {}, "Last errors"), errors,
      h("h3", {}, c.file), J.codeView(c.yaml, "yaml"),
      c.script_file ? [h("h3", {}, c.script_file), J.codeView(c.script, "lua")] : null);
    try {
      const r = await api("GET", "/api/v1/messages" + J.query({ channel: c.name, status: "ERROR", limit: 10 }));
      J.put(errors, r.messages.length ? h("ul", {}, r.messages.map((m) =>
        h("li", {}, link("#/message/" + m.id, "#" + m.id), ` ${time(m.received)} ${m.type} `, h("span", { class: "error" }, m.error))))
        : h("p", { class: "muted" }, "none"));
    } catch (e) { J.put(errors, problem(e)); }
  };

  // ---- worklist: list, filter, status change, cancel.
  const WL_FILTERS = ["patient_id", "patient_name", "accession", "modality", "station_ae", "start_date"];
  const WL_STATUSES = ["SCHEDULED", "IN PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED"];
  J.views.worklist = async (main, params) => {
    const form = h("form", { class: "filters" }, WL_FILTERS.map((k) => h("label", {}, k.replace("_", " "),
      h("input", { name: k, value: params[k] || "", size: 12 }))),
      h("label", {}, "finished too", h("input", { type: "checkbox", name: "include_finished", checked: params.include_finished === "true" })),
      h("button", { type: "submit", class: "primary" }, "Filter"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = {};
      for (const k of WL_FILTERS) q[k] = form.elements[k].value;
      if (form.elements.include_finished.checked) q.include_finished = "true";
      location.hash = "#/worklist" + J.query(q);
    });
    const out = h("div");
    J.put(main, h("h2", {}, "Modality worklist"), form, out);
    try {
      const q = {};
      for (const k of [...WL_FILTERS, "include_finished"]) q[k] = params[k];
      const r = await api("GET", "/api/v1/worklist" + J.query(q));
      J.put(out, h("table", { id: "worklist-items" }, h("tr", {}, ["start", "patient", "accession", "modality", "station", "status", ""].map((t) => h("th", {}, t))),
        r.items.map((it) => {
          const sel = may("operator") ? h("select", { onchange: async (ev) => {
            try { await api("PUT", `/api/v1/worklist/${it.id}/status`, { status: ev.target.value }); J.views.worklist(main, params); }
            catch (e) { out.prepend(problem(e)); }
          } }, WL_STATUSES.map((s) => h("option", { value: s, selected: s === it.status }, s))) : state(it.status);
          return h("tr", { "data-item": it.id }, h("td", {}, `${it.start_date} ${it.start_time}`), h("td", {}, `${it.patient_name} (${it.patient_id})`),
            h("td", {}, it.accession), h("td", {}, it.modality), h("td", {}, it.station_ae), h("td", {}, sel),
            h("td", {}, it.status !== "CANCELLED" ? action("operator", "Cancel", async () => {
              try { await api("POST", `/api/v1/worklist/${it.id}/cancel`); J.views.worklist(main, params); } catch (e) { out.prepend(problem(e)); }
            }, "danger") : null));
        })), r.items.length ? null : h("p", { class: "muted" }, "No item."));
    } catch (e) { J.put(out, problem(e)); }
  };

  // A view of a route that an engine may not have yet: 404 says so.
  const missing = (e, what) => (e.status === 404 ? h("p", { class: "muted" }, `This engine has no ${what}.`) : problem(e));

  // ---- event log, filterable, paged like messages.
  J.views.events = (main, params) => {
    const keys = ["type", "channel", "user"];
    const form = h("form", { class: "filters", id: "events-filter" }, keys.map((k) => h("label", {}, k, h("input", { name: k, value: params[k] || "", size: 14 }))),
      h("button", { type: "submit", class: "primary" }, "Filter"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = {};
      for (const k of keys) q[k] = form.elements[k].value;
      location.hash = "#/events" + J.query(q);
    });
    const table = h("table", { id: "event-list" }, h("tr", {}, ["time", "type", "channel", "user", "address", "what"].map((t) => h("th", {}, t))));
    const out = h("div", {}, table);
    J.put(main, h("h2", {}, "Events"), form, out);
    const load = async (before) => {
      try {
        const q = { before, limit: 100 };
        for (const k of keys) q[k] = params[k];
        const r = await api("GET", "/api/v1/events" + J.query(q));
        for (const e of r.events) table.append(h("tr", { "data-event": e.id }, h("td", {}, time(e.time)), h("td", {}, e.type),
          h("td", {}, e.channel), h("td", {}, e.user), h("td", {}, e.address), h("td", {}, e.text)));
        table.dataset.loaded = "true";
        if (r.next !== null) out.append(h("button", { type: "button", onclick: (ev) => { ev.target.remove(); load(r.next); } }, "More"));
      } catch (e) { J.put(out, missing(e, "event log")); }
    };
    load(undefined);
  };

  // ---- alerts and their state, refreshed every 2 s.
  J.views.alerts = (main) => {
    const out = h("div", { id: "alerts" });
    J.put(main, h("h2", {}, "Alerts"), out);
    let timer = null, stopped = false;
    const poll = async () => {
      try {
        const r = await api("GET", "/api/v1/alerts");
        if (stopped) return;
        J.put(out, r.alerts.length ? h("table", { id: "alert-list" }, h("tr", {}, ["alert", "rule", "state", "since", "detail"].map((t) => h("th", {}, t))),
          r.alerts.map((a) => h("tr", { "data-alert": a.name, "data-state": a.state }, h("td", {}, a.name), h("td", {}, a.rule),
            h("td", {}, state(a.state)), h("td", {}, time(a.since)), h("td", {}, a.detail)))) : h("p", { class: "muted" }, "No alert is configured."));
      } catch (e) { J.put(out, missing(e, "alerts")); }
      if (!stopped) timer = setTimeout(poll, 2000);
    };
    poll();
    return () => { stopped = true; clearTimeout(timer); };
  };

  // ---- users (admin): list, add, change role, remove.
  const ROLES = ["viewer", "operator", "admin"];
  J.views.users = async (main) => {
    const out = h("div");
    const form = h("form", { class: "filters", id: "add-user" },
      h("label", {}, "name", h("input", { name: "name", required: true })),
      h("label", {}, "role", h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r)))),
      h("label", {}, "password", h("input", { name: "password", type: "password", minlength: 8, required: true, autocomplete: "new-password" })),
      h("button", { type: "submit", class: "primary" }, "Add user"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await api("POST", "/api/v1/users", { name: form.elements.name.value, role: form.elements.role.value, password: form.elements.password.value });
        J.views.users(main);
      } catch (e) { out.prepend(problem(e)); }
    });
    J.put(main, h("h2", {}, "Users"), form, out);
    try {
      const r = await api("GET", "/api/v1/users");
      J.put(out, h("table", { id: "user-list" }, h("tr", {}, ["user", "role", "since", ""].map((t) => h("th", {}, t))),
        r.users.map((u) => h("tr", { "data-user": u.name }, h("td", {}, u.name),
          h("td", {}, h("select", { onchange: async (ev) => {
            try { await api("PUT", "/api/v1/users/" + enc(u.name), { role: ev.target.value }); } catch (e) { out.prepend(problem(e)); J.views.users(main); }
          } }, ROLES.map((x) => h("option", { value: x, selected: x === u.role }, x)))),
          h("td", {}, time(u.created)),
          h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
            if (!confirm(`Remove the user ${u.name} and their tokens?`)) return;
            try { await api("DELETE", "/api/v1/users/" + enc(u.name)); J.views.users(main); } catch (e) { out.prepend(problem(e)); }
          } }, "Remove"))))));
    } catch (e) { J.put(out, problem(e)); }
  };
})();
