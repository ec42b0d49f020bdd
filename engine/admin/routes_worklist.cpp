// The admin API's worklist routes: list and search the modality worklist's
// items, show one, change an item's status, cancel it.
#include <charconv>

#include "engine/admin/admin_server.h"
#include "engine/admin/route_support.h"
#include "engine/core/engine.h"

namespace junction::admin {

namespace {

const std::vector<std::string> kStatuses = {"SCHEDULED", "IN PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED"};

Schema itemSchema() {
    return object({{"id", integer(), true},
                   {"status", words(kStatuses), true},
                   {"patient_id", string(), true},
                   {"patient_name", string("DICOM PN, e.g. DOE^JOHN"), true},
                   {"accession", string(), true},
                   {"modality", string(), true},
                   {"station_ae", string(), true},
                   {"start_date", string("YYYYMMDD"), true},
                   {"start_time", string("HHMMSS"), true},
                   {"requested_procedure_id", string(), true},
                   {"study_instance_uid", string(), true},
                   {"updated", string("ISO 8601"), true}});
}

void writeItem(JsonWriter& w, const store::WorklistItem& it, bool withDataset) {
    w.beginObject()
        .field("id", it.id)
        .field("status", store::toString(it.status))
        .field("patient_id", it.patientId)
        .field("patient_name", it.patientName)
        .field("accession", it.accessionNumber)
        .field("modality", it.modality)
        .field("station_ae", it.stationAeTitle)
        .field("start_date", it.spsStartDate)
        .field("start_time", it.spsStartTime)
        .field("requested_procedure_id", it.requestedProcedureId)
        .field("study_instance_uid", it.studyInstanceUid)
        .field("updated", isoTime(it.updatedAt));
    if (withDataset) w.key("dataset").raw(it.dataset.empty() ? "{}" : it.dataset);
    w.endObject();
}

store::WorklistItem itemOf(AdminContext& ctx, const ApiRequest& req) {
    const std::string& text = req.pathParam("id");
    std::int64_t id = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    auto it = ec == std::errc() && end == text.data() + text.size() ? ctx.engine.worklist().get(id) : std::nullopt;
    if (!it) throw ApiError(404, "no worklist item " + text);
    return *it;
}

ApiResponse setStatus(AdminContext& ctx, const ApiRequest& req, store::WorklistStatus status) {
    auto it = itemOf(ctx, req);
    ctx.engine.worklist().setItemStatus(it.id, status);
    JsonWriter w;
    writeItem(w, *ctx.engine.worklist().get(it.id), false);
    return jsonAnswer(w);
}

}  // namespace

std::vector<Route> worklistRoutes(AdminContext& ctx) {
    std::vector<Route> routes;

    Route list{"GET", "/api/v1/worklist", Role::Viewer, "worklist",
               "Worklist items by scheduled start; values in DICOM matching syntax (* and ? wildcards, date ranges A-B)"};
    list.query = object({{"patient_id", string()},
                         {"patient_name", string("DOE^*")},
                         {"accession", string()},
                         {"modality", string()},
                         {"station_ae", string()},
                         {"start_date", string("YYYYMMDD or a range YYYYMMDD-YYYYMMDD")},
                         {"study_instance_uid", string()},
                         {"include_finished", boolean("also completed, discontinued and cancelled items")},
                         {"limit", integer("1 to 1000, default 100")}});
    list.response = object({{"items", array(itemSchema()), true}});
    list.handler = [&ctx](const ApiRequest& req) {
        const Fields& q = req.query;
        store::WorklistFilter f;
        f.patientId = q.str("patient_id");
        f.patientName = q.str("patient_name");
        f.accessionNumber = q.str("accession");
        f.modality = q.str("modality");
        f.stationAeTitle = q.str("station_ae");
        f.spsStartDate = q.str("start_date");
        f.studyInstanceUid = q.str("study_instance_uid");
        f.includeFinished = q.boolean("include_finished");
        auto limit = pageLimit(q);
        f.limit = static_cast<std::size_t>(limit);
        JsonWriter w;
        w.beginObject().key("items").beginArray();
        for (const auto& it : ctx.engine.worklist().find(f)) writeItem(w, it, false);
        w.endArray().endObject();
        return jsonAnswer(w);
    };
    routes.push_back(std::move(list));

    Route one{"GET", "/api/v1/worklist/{id}", Role::Viewer, "worklist", "One worklist item with its DICOM JSON dataset"};
    Schema withDataset = itemSchema();
    withDataset.properties.push_back({"dataset", mapOf(object({}), "the item as DICOM JSON (PS3.18 F.2)"), true});
    one.response = withDataset;
    one.errors = {404};
    one.handler = [&ctx](const ApiRequest& req) {
        JsonWriter w;
        writeItem(w, itemOf(ctx, req), true);
        return jsonAnswer(w);
    };
    routes.push_back(std::move(one));

    Route status{"PUT", "/api/v1/worklist/{id}/status", Role::Operator, "worklist", "Change a worklist item's status"};
    status.request = object({{"status", words(kStatuses), true}});
    status.response = itemSchema();
    status.errors = {404};
    status.handler = [&ctx](const ApiRequest& req) {
        return setStatus(ctx, req, *store::parseWorklistStatus(req.body.str("status")));
    };
    routes.push_back(std::move(status));

    Route cancel{"POST", "/api/v1/worklist/{id}/cancel", Role::Operator, "worklist",
                 "Cancel a worklist item (modalities no longer see it)"};
    cancel.response = itemSchema();
    cancel.errors = {404};
    cancel.handler = [&ctx](const ApiRequest& req) { return setStatus(ctx, req, store::WorklistStatus::Cancelled); };
    routes.push_back(std::move(cancel));
    return routes;
}

}  // namespace junction::admin
