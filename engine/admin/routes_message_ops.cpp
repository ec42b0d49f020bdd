// The admin API's repairs of stored messages: reprocess one message (as
// received or edited) or a search result into its channel as new messages
// linked to the originals, resend one delivery, delete a message, and export a
// selection as an HL7 file or a zip.
#include <algorithm>
#include <charconv>
#include <regex>

#include "engine/admin/admin_server.h"
#include "engine/admin/message_filters.h"
#include "engine/admin/route_support.h"
#include "engine/admin/zip_writer.h"
#include "engine/core/engine.h"

namespace junction::admin {

namespace {

store::MessageId messageId(const ApiRequest& req) {
    const std::string& text = req.pathParam("id");
    store::MessageId id = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || id <= 0) throw ApiError(404, "no message " + text);
    return id;
}

// Throws the ApiError of a repair that was not done.
void check(const core::RepairResult& r) {
    using Code = core::RepairResult::Code;
    if (r.code == Code::NotFound) throw ApiError(404, r.error);
    if (r.code == Code::Conflict) throw ApiError(409, r.error);
}

// A download's file name: letters, digits, '.', '_', '-' only, not starting with a dot.
std::string exportName(const Fields& q, const std::string& extension) {
    if (!q.has("name")) return "messages" + extension;
    std::string name = q.str("name");
    static const std::regex safe("[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}");
    if (!std::regex_match(name, safe))
        throw ApiError(400, "name: only letters, digits, '.', '_' and '-' (at most 128, not starting with '.')");
    return name;
}

// An HL7 v2 message with CR LF after each segment (a file's lines); other content as it is.
std::string asLines(const store::MessageSummary& m, const std::string& raw) {
    if (m.dataType != "hl7v2") return raw;
    std::string out;
    out.reserve(raw.size() + raw.size() / 40 + 2);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
            out += "\r\n";
        } else {
            out += c;
        }
    }
    if (!out.empty() && out.back() != '\n') out += "\r\n";
    return out;
}

// The name of a message's file in a zip: <id>.hl7, <id>.dcm.json (a DICOM source's), <id>.txt.
std::string entryName(const store::MessageSummary& m) {
    std::string id = std::to_string(m.id);
    if (m.dataType == "hl7v2") return id + ".hl7";
    if (m.dataType == "json" && m.source.rfind("dicom", 0) == 0) return id + ".dcm.json";
    return id + ".txt";
}

}  // namespace

std::vector<Route> messageOpRoutes(AdminContext& ctx) {
    std::vector<Route> routes;

    Route one{"POST", "/api/v1/messages/{id}/reprocess", Role::Operator, "messages",
              "Reprocess a message into its channel as a new message linked to it (its raw content, or `raw`)"};
    one.request = object({{"raw", string("edited raw content to process instead of the stored one")}});
    one.bodyOptional = true;
    one.response = object({{"id", integer("the new message"), true}, {"original", integer(), true}});
    one.status = 201;
    one.errors = {404, 409};
    one.handler = [&ctx](const ApiRequest& req) {
        store::MessageId id = messageId(req);
        std::optional<std::string> raw;
        if (req.body.has("raw")) raw = req.body.str("raw");
        auto r = ctx.engine.reprocess(id, raw, req.principal.user);
        check(r);
        JsonWriter w;
        w.beginObject().field("id", static_cast<std::int64_t>(r.id)).field("original", static_cast<std::int64_t>(id)).endObject();
        return jsonAnswer(w, 201);
    };
    routes.push_back(std::move(one));

    Route bulk{"POST", "/api/v1/messages/reprocess", Role::Operator, "messages",
               "Reprocess the messages a search finds (newest first, at most `limit`); `confirm` must be true"};
    auto filters = messageFilterProperties();
    filters.push_back({"limit", integer("1 to 1000, default 100")});
    filters.push_back({"confirm", boolean("must be true: many messages are sent again"), true});
    bulk.request = object(std::move(filters));
    bulk.response = object({{"reprocessed", integer(), true}, {"ids", array(integer(), "the new messages"), true}});
    bulk.errors = {409};
    bulk.handler = [&ctx](const ApiRequest& req) {
        const Fields& b = req.body;
        if (!b.boolean("confirm")) throw ApiError(400, "confirm must be true to reprocess a search result");
        int limit = messageLimit(b);
        auto found = selectMessages(ctx.engine.store(), messageFilters(b), limit);
        // Every channel must take them: checked first, so that a stopped one stops nothing halfway.
        for (const auto& m : found) {
            auto c = ctx.engine.channel(m.channel);
            if (!c || c->state != core::ChannelState::Running)
                throw ApiError(409, "channel '" + m.channel + "' is not running (message " + std::to_string(m.id) + ")");
        }
        std::vector<std::int64_t> ids;
        // Oldest first: the new messages keep the originals' order.
        for (auto it = found.rbegin(); it != found.rend(); ++it) {
            auto r = ctx.engine.reprocess(it->id, std::nullopt, req.principal.user);
            if (r.code == core::RepairResult::Code::Done) ids.push_back(r.id);  // else: its content was not kept
        }
        JsonWriter w;
        w.beginObject().field("reprocessed", static_cast<std::int64_t>(ids.size())).key("ids").beginArray();
        for (auto id : ids) w.value(id);
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(bulk));

    Route resend{"POST", "/api/v1/messages/{id}/resend", Role::Operator, "messages",
                 "Queue a message's delivery to one destination again, with its stored encoded content"};
    resend.request = object({{"destination", string("destination name"), true}});
    resend.response = object({{"id", integer(), true}, {"destination", string(), true}, {"status", words({"QUEUED"}), true}});
    resend.status = 202;
    resend.errors = {404, 409};
    resend.handler = [&ctx](const ApiRequest& req) {
        store::MessageId id = messageId(req);
        std::string destination = req.body.str("destination");
        check(ctx.engine.resend(id, destination));
        JsonWriter w;
        w.beginObject()
            .field("id", static_cast<std::int64_t>(id))
            .field("destination", destination)
            .field("status", "QUEUED")
            .endObject();
        return jsonAnswer(w, 202);
    };
    routes.push_back(std::move(resend));

    Route remove{"DELETE", "/api/v1/messages/{id}", Role::Admin, "messages",
                 "Delete a message with its content and deliveries (not while it is RECEIVED or has a QUEUED delivery)"};
    remove.status = 204;
    remove.errors = {404, 409};
    remove.handler = [&ctx](const ApiRequest& req) {
        check(ctx.engine.deleteMessage(messageId(req)));
        return ApiResponse{204, "", "", {}};
    };
    routes.push_back(std::move(remove));

    Route exp{"GET", "/api/v1/messages/export", Role::Viewer, "messages",
              "Download the raw content of the messages a search finds: an HL7 file (a blank line between messages) or a "
              "zip of one file per message"};
    auto params = messageFilterProperties();
    params.push_back({"before", integer("only ids lower than this")});
    params.push_back({"limit", integer("1 to 1000, default 100")});
    params.push_back({"format", words({"hl7", "zip"}, "hl7 (default): text/plain; zip: application/zip")});
    params.push_back({"name", string("the download's file name: letters, digits, '.', '_', '-'")});
    exp.query = object(std::move(params));
    exp.contentType = "text/plain";
    exp.handler = [&ctx](const ApiRequest& req) {
        const Fields& q = req.query;
        bool zip = q.str("format", "hl7") == "zip";
        std::string name = exportName(q, zip ? ".zip" : ".hl7");
        store::SearchQuery sq = messageFilters(q);
        sq.beforeId = q.integer("before", 0);
        if (sq.beforeId < 0) throw ApiError(400, "before must be a message id");
        auto found = selectMessages(ctx.engine.store(), sq, messageLimit(q));
        ApiResponse out;
        ZipWriter archive;
        // Oldest first, as they were received; a message whose content was not kept is left out.
        for (auto it = found.rbegin(); it != found.rend(); ++it) {
            auto d = ctx.engine.store().get(it->id);
            if (!d || d->raw.empty()) continue;
            if (zip) {
                archive.add(entryName(*it), d->raw);
            } else {
                if (!out.body.empty()) out.body += "\r\n";
                out.body += asLines(*it, d->raw);
            }
        }
        if (zip) out.body = archive.finish();
        out.contentType = zip ? "application/zip" : "text/plain; charset=utf-8";
        out.headers.push_back({"Content-Disposition", "attachment; filename=\"" + name + "\""});
        return out;
    };
    routes.push_back(std::move(exp));
    return routes;
}

}  // namespace junction::admin
