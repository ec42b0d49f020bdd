// The admin API's event log and alerts: events newest first, filtered by
// type, channel and user, paged by id (keyset, as messages are); the alert
// rules of junction.yaml with their state.
#include "engine/admin/admin_server.h"
#include "engine/admin/route_support.h"
#include "engine/core/engine.h"

namespace junction::admin {

namespace {

// The events that tell who did what (logins, API calls, views of patient
// data): an admin sees all of them, other users their own.
bool isAudit(const std::string& type) {
    return type.rfind("login.", 0) == 0 || type.rfind("api.", 0) == 0 || type == "message.viewed";
}

}  // namespace

std::vector<Route> eventRoutes(AdminContext& ctx) {
    std::vector<Route> routes;

    Route events{"GET", "/api/v1/events", Role::Viewer, "events",
                 "The event log, newest first: channels deployed, started, stopped and failed, connections, "
                 "destinations retrying and recovered, prune runs, logins, mutating API calls, message views, alerts; "
                 "an admin sees every user's logins, calls and views, other users their own; `next` is the `before` "
                 "of the following page"};
    events.query = object({{"type", string("an event type (login.failed), or a prefix ending in '.' (channel.)")},
                           {"channel", string("channel name")},
                           {"user", string("user name")},
                           {"before", integer("only ids lower than this (the previous page's next)")},
                           {"limit", integer("1 to 1000, default 100")}});
    events.response = object(
        {{"events", array(object({{"id", integer(), true},
                                  {"time", string("ISO 8601"), true},
                                  {"type", string("channel.started, connection.opened, login.failed, api.post, ..."), true},
                                  {"channel", nullable(string()), true},
                                  {"user", nullable(string()), true},
                                  {"address", nullable(string("the client's address")), true},
                                  {"text", string(), true}})),
          true},
         {"next", nullable(integer("the `before` of the next page; null on the last page")), true}});
    events.handler = [&ctx](const ApiRequest& req) {
        const Fields& q = req.query;
        store::EventQuery eq;
        eq.type = q.str("type");
        eq.channel = q.str("channel");
        eq.user = q.str("user");
        eq.beforeId = q.integer("before", 0);
        if (eq.beforeId < 0) throw ApiError(400, "before must be an event id");
        const auto limit = pageLimit(q);
        const bool all = req.principal.role >= Role::Admin;
        // One more than asked (whether there is a next page), read on past events this user may not see.
        std::vector<store::Event> found;
        eq.limit = static_cast<int>(limit) + 1;
        for (;;) {
            auto page = ctx.engine.events().list(eq);
            for (auto& e : page)
                if (all || !isAudit(e.type) || e.user == req.principal.user) found.push_back(std::move(e));
            if (found.size() > static_cast<std::size_t>(limit) || page.size() < static_cast<std::size_t>(eq.limit)) break;
            eq.beforeId = page.back().id;
        }
        bool more = found.size() > static_cast<std::size_t>(limit);
        if (more) found.resize(static_cast<std::size_t>(limit));
        JsonWriter w;
        w.beginObject().key("events").beginArray();
        auto orNull = [&w](const char* key, const std::string& v) {
            w.key(key);
            if (v.empty()) w.null();
            else w.value(v);
        };
        for (const auto& e : found) {
            w.beginObject().field("id", e.id).field("time", isoTime(e.time)).field("type", e.type);
            orNull("channel", e.channel);
            orNull("user", e.user);
            orNull("address", e.address);
            w.field("text", e.text).endObject();
        }
        w.endArray().key("next");
        if (more) w.value(found.back().id);
        else w.null();
        w.endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(events));

    Route alerts{"GET", "/api/v1/alerts", Role::Viewer, "events",
                 "The alert rules of junction.yaml, each with its state: ok or firing, since when, and why"};
    alerts.response = object({{"alerts", array(object({{"name", string(), true},
                                                       {"rule", string("the rule in words"), true},
                                                       {"state", words({"ok", "firing"}), true},
                                                       {"since", nullable(string("ISO 8601: the last change")), true},
                                                       {"detail", string(), true}})),
                               true}});
    alerts.handler = [&ctx](const ApiRequest&) {
        JsonWriter w;
        w.beginObject().key("alerts").beginArray();
        for (const auto& a : ctx.engine.alerts()) {
            w.beginObject().field("name", a.name).field("rule", a.rule).field("state", a.firing ? "firing" : "ok");
            w.key("since");
            if (a.since) w.value(isoTime(*a.since));
            else w.null();
            w.field("detail", a.detail).endObject();
        }
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(alerts));
    return routes;
}

}  // namespace junction::admin
