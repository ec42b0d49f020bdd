// `worklist` destination: the channel's output (a JSON keyword table, e.g. what
// a Lua transformer returns) becomes, changes or ends a modality worklist item
// in the engine's store.
//
//   {"AccessionNumber":"A1", "PatientID":"123", ..., "ScheduledProcedureStepSequence":[{...}]}
//       → upsert (the default action)
//   {"action":"cancel", "AccessionNumber":"A1"}
//       → status change of every item with that AccessionNumber (or StudyInstanceUID)
//   [ {...}, {...} ]
//       → each in order (a message with several orders)
//
// Bad content is an Error (retrying cannot fix it); a busy database is a Retry.
#include "connectors/worklist/worklist_connectors.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <optional>
#include <sstream>

#include "engine/dicom/keyword_json.h"
#include "engine/dicom/uid.h"
#include "engine/store/worklist_store.h"
#include "engine/util/json_text.h"

namespace junction::connectors {

namespace {

using util::jsonString;

// The action names of the content's "action" key and the status they set.
std::optional<store::WorklistStatus> statusOfAction(const std::string& action) {
    if (action == "cancel") return store::WorklistStatus::Cancelled;
    if (action == "complete") return store::WorklistStatus::Completed;
    if (action == "discontinue") return store::WorklistStatus::Discontinued;
    if (action == "in_progress") return store::WorklistStatus::InProgress;
    if (action == "schedule") return store::WorklistStatus::Scheduled;
    return std::nullopt;
}

// One thing to do to the worklist, checked before anything is written.
struct Operation {
    std::string action;  // "upsert" or a status action
    store::WorklistItem item;
    Poco::JSON::Object::Ptr content;  // upsert without StudyInstanceUID: completed before writing
    std::string key;     // status actions: AccessionNumber or StudyInstanceUID
    store::WorklistStatus status = store::WorklistStatus::Scheduled;
};

// Reads one keyword table; throws std::invalid_argument on bad content.
Operation operationOf(const Poco::JSON::Object::Ptr& obj, const std::string& json, const std::string& where) {
    Operation op;
    op.action = "upsert";
    if (obj->has("action")) {
        Poco::Dynamic::Var a = obj->get("action");
        if (!a.isString()) throw std::invalid_argument(where + "\"action\" must be a string");
        op.action = a.convert<std::string>();
    }
    if (op.action == "upsert") {
        try {
            op.item = dicom::worklistItemFromKeywords(json, {"action", "status"});
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(where + e.what());
        }
        if (op.item.accessionNumber.empty() && op.item.studyInstanceUid.empty())
            throw std::invalid_argument(where + "a worklist item needs an AccessionNumber or a StudyInstanceUID");
        if (op.item.studyInstanceUid.empty()) op.content = obj;
        if (obj->has("status")) {
            if (!obj->get("status").isString()) throw std::invalid_argument(where + "\"status\" must be a string");
            std::string st = obj->get("status").convert<std::string>();
            auto parsed = store::parseWorklistStatus(st);
            if (!parsed) throw std::invalid_argument(where + "unknown status '" + st + "'");
            op.item.status = *parsed;
        } else {
            op.item.keepStatus = true;  // an update does not undo a step in progress
        }
        return op;
    }
    auto status = statusOfAction(op.action);
    if (!status)
        throw std::invalid_argument(where + "unknown action '" + op.action +
                                    "' (upsert, cancel, complete, discontinue, in_progress, schedule)");
    op.status = *status;
    for (const char* k : {"AccessionNumber", "StudyInstanceUID"}) {
        if (!obj->has(k)) continue;
        Poco::Dynamic::Var v = obj->get(k);
        if (!v.isString() && !v.isNumeric()) continue;
        op.key = v.convert<std::string>();
        if (!op.key.empty()) break;
    }
    if (op.key.empty())
        throw std::invalid_argument(where + "action '" + op.action + "' needs an AccessionNumber or a StudyInstanceUID");
    return op;
}

// An item without StudyInstanceUID keeps the one of the item it updates (the
// same AccessionNumber and RequestedProcedureID), or gets a new one: an order
// update that does not repeat the UID must not change the study.
store::WorklistItem withStudyUid(store::WorklistStore& wl, const Operation& op) {
    std::string uid;
    store::WorklistFilter f;
    f.accessionNumber = op.item.accessionNumber;
    f.includeFinished = true;
    for (const auto& existing : wl.find(f))
        if (existing.accessionNumber == op.item.accessionNumber &&
            existing.requestedProcedureId == op.item.requestedProcedureId && !existing.studyInstanceUid.empty()) {
            uid = existing.studyInstanceUid;
            break;
        }
    if (uid.empty()) uid = dicom::newUid();
    Poco::JSON::Object copy(*op.content);
    copy.set("StudyInstanceUID", uid);
    std::ostringstream json;
    copy.stringify(json);
    store::WorklistItem item = dicom::worklistItemFromKeywords(json.str(), {"action", "status"});
    item.status = op.item.status;
    item.keepStatus = op.item.keepStatus;
    return item;
}

class WorklistDestination : public core::Destination {
public:
    explicit WorklistDestination(store::WorklistStore* worklist) : worklist_(worklist) {}

    core::SendResult send(const core::Outbound& m) override {
        if (!worklist_) return core::SendResult::fail("worklist: no engine (and so no worklist) to write to");
        // Everything is read and checked first: bad content writes nothing.
        std::vector<Operation> ops;
        try {
            Poco::JSON::Parser parser;
            Poco::Dynamic::Var v = parser.parse(m.content);
            if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
                ops.push_back(operationOf(v.extract<Poco::JSON::Object::Ptr>(), m.content, ""));
            } else if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
                auto arr = v.extract<Poco::JSON::Array::Ptr>();
                for (unsigned i = 0; i < arr->size(); ++i) {
                    std::string where = "item " + std::to_string(i + 1) + ": ";
                    auto obj = arr->getObject(i);
                    if (!obj) throw std::invalid_argument(where + "not a JSON object");
                    std::ostringstream one;
                    obj->stringify(one);
                    ops.push_back(operationOf(obj, one.str(), where));
                }
                if (ops.empty()) throw std::invalid_argument("the content is an empty array");
            } else {
                throw std::invalid_argument("the content is not a JSON object");
            }
        } catch (const Poco::Exception& e) {
            return core::SendResult::fail("worklist: the content is not JSON (" + e.displayText() +
                                          "); a transformer should return the item as a table of DICOM keywords");
        } catch (const std::invalid_argument& e) {
            return core::SendResult::fail(std::string("worklist: ") + e.what());
        }
        store::WorklistStore& wl = *worklist_;
        // Applied in order; a retry after a busy database repeats them, which is
        // harmless (upserts find their item, status changes are idempotent).
        std::string response;
        try {
            for (const auto& op : ops) {
                if (!response.empty()) response += ",";
                if (op.action == "upsert") {
                    std::int64_t id = wl.upsert(op.content ? withStudyUid(wl, op) : op.item);
                    response += "{\"action\":\"upsert\",\"id\":" + std::to_string(id) +
                                ",\"AccessionNumber\":" + jsonString(op.item.accessionNumber) + "}";
                } else {
                    std::size_t n = wl.setStatus(op.key, op.status);
                    response += "{\"action\":" + jsonString(op.action) + ",\"key\":" + jsonString(op.key) +
                                ",\"changed\":" + std::to_string(n) + "}";
                }
            }
        } catch (const store::WorklistBusyError& e) {
            return core::SendResult::retry(e.what());
        } catch (const std::invalid_argument& e) {
            return core::SendResult::fail(std::string("worklist: ") + e.what());
        } catch (const std::exception& e) {
            return core::SendResult::retry(std::string("worklist: ") + e.what());
        }
        return core::SendResult::ok(ops.size() == 1 ? response : "[" + response + "]");
    }

    std::string describe() const override { return "worklist"; }

private:
    store::WorklistStore* worklist_;
};

class WorklistDestinationFactory : public core::MappedDestinationFactory<config::NoSettings> {
public:
    WorklistDestinationFactory() : MappedDestinationFactory(config::noSettings()) {}

protected:
    std::unique_ptr<core::Destination> build(config::NoSettings, const core::BuildContext& ctx) const override {
        return std::make_unique<WorklistDestination>(ctx.worklist);
    }
};

}  // namespace

void registerWorklist(core::ConnectorRegistry& registry) {
    registry.addDestination("worklist", std::make_unique<WorklistDestinationFactory>());
}

}  // namespace junction::connectors
