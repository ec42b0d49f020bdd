// `worklist` destination: the channel's output (a JSON keyword table, e.g. what
// a Lua transformer returns) becomes, changes or ends a modality worklist item
// in the engine's store.
//
//   {"AccessionNumber":"A1", "PatientID":"123", ..., "ScheduledProcedureStepSequence":[{...}]}
//       → upsert (the default action)
//   {"action":"cancel", "AccessionNumber":"A1"}
//       → status change of every item with that AccessionNumber (or StudyInstanceUID)
//
// Bad content is an Error (retrying cannot fix it); a busy database is a Retry.
#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "connectors/builtin.h"
#include "connectors/dicom/keyword_json.h"
#include "engine/core/engine.h"
#include "engine/store/worklist_store.h"

namespace junction::connectors {

namespace {

using config::Setting;

std::string jsonString(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

// The action names of the content's "action" key and the status they set.
std::optional<store::WorklistStatus> statusOfAction(const std::string& action) {
    if (action == "cancel") return store::WorklistStatus::Cancelled;
    if (action == "complete") return store::WorklistStatus::Completed;
    if (action == "discontinue") return store::WorklistStatus::Discontinued;
    if (action == "in_progress") return store::WorklistStatus::InProgress;
    if (action == "schedule") return store::WorklistStatus::Scheduled;
    return std::nullopt;
}

class WorklistDestination : public core::Destination {
public:
    explicit WorklistDestination(core::Engine* engine) : engine_(engine) {}

    core::SendResult send(const core::Outbound& m) override {
        if (!engine_) return core::SendResult::fail("worklist: no engine (and so no worklist) to write to");
        Poco::JSON::Object::Ptr obj;
        try {
            Poco::JSON::Parser parser;
            Poco::Dynamic::Var v = parser.parse(m.content);
            if (v.type() == typeid(Poco::JSON::Object::Ptr)) obj = v.extract<Poco::JSON::Object::Ptr>();
        } catch (const Poco::Exception& e) {
            return core::SendResult::fail("worklist: the content is not JSON (" + e.displayText() +
                                          "); a transformer should return the item as a table of DICOM keywords");
        }
        if (!obj)
            return core::SendResult::fail("worklist: the content is not a JSON object; a transformer should return "
                                          "the item as a table of DICOM keywords");
        std::string action = "upsert";
        if (obj->has("action")) {
            Poco::Dynamic::Var a = obj->get("action");
            if (!a.isString()) return core::SendResult::fail("worklist: \"action\" must be a string");
            action = a.convert<std::string>();
        }
        store::WorklistStore& wl = engine_->worklist();
        try {
            if (action == "upsert") {
                auto item = dicom::worklistItemFromKeywords(m.content, {"action", "status"});
                if (obj->has("status")) {
                    auto st = store::parseWorklistStatus(obj->get("status").convert<std::string>());
                    if (!st) return core::SendResult::fail("worklist: unknown status '" +
                                                           obj->get("status").convert<std::string>() + "'");
                    item.status = *st;
                }
                std::int64_t id = wl.upsert(item);
                return core::SendResult::ok("{\"action\":\"upsert\",\"id\":" + std::to_string(id) +
                                            ",\"AccessionNumber\":" + jsonString(item.accessionNumber) + "}");
            }
            auto status = statusOfAction(action);
            if (!status)
                return core::SendResult::fail("worklist: unknown action '" + action +
                                              "' (upsert, cancel, complete, discontinue, in_progress, schedule)");
            std::string key;
            for (const char* k : {"AccessionNumber", "StudyInstanceUID"}) {
                if (!obj->has(k)) continue;
                Poco::Dynamic::Var v = obj->get(k);
                if (!v.isString() && !v.isNumeric()) continue;
                key = v.convert<std::string>();
                if (!key.empty()) break;
            }
            if (key.empty())
                return core::SendResult::fail("worklist: action '" + action +
                                              "' needs an AccessionNumber or a StudyInstanceUID");
            std::size_t n = wl.setStatus(key, *status);
            return core::SendResult::ok("{\"action\":" + jsonString(action) + ",\"key\":" + jsonString(key) +
                                        ",\"changed\":" + std::to_string(n) + "}");
        } catch (const store::WorklistBusyError& e) {
            return core::SendResult::retry(e.what());
        } catch (const std::invalid_argument& e) {
            return core::SendResult::fail(std::string("worklist: ") + e.what());
        } catch (const Poco::Exception& e) {
            return core::SendResult::fail("worklist: " + e.displayText());
        } catch (const std::exception& e) {
            return core::SendResult::retry(std::string("worklist: ") + e.what());
        }
    }

    std::string describe() const override { return "worklist"; }

private:
    core::Engine* engine_;
};

class WorklistDestinationFactory : public core::DestinationFactory {
public:
    std::vector<Setting> settings() const override { return {}; }
    std::unique_ptr<core::Destination> create(const config::Node&, const core::BuildContext& ctx) const override {
        return std::make_unique<WorklistDestination>(ctx.engine);
    }
};

}  // namespace

std::unique_ptr<core::DestinationFactory> worklistDestinationFactory() {
    return std::make_unique<WorklistDestinationFactory>();
}

}  // namespace junction::connectors
