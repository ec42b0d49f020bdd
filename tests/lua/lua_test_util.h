// Helpers for the Lua runtime tests.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>

#include "engine/lua/script.h"

namespace junction::lua::test {

// The standard sample (samples/hl7/orm_o01_nw.hl7), or an inline copy of it.
inline const std::string& sampleOrm() {
    static const std::string text = [] {
        std::ifstream f(std::string(JUNCTION_SOURCE_DIR) + "/samples/hl7/orm_o01_nw.hl7", std::ios::binary);
        if (f) {
            std::stringstream ss;
            ss << f.rdbuf();
            if (!ss.str().empty()) return ss.str();
        }
        return std::string(
            "MSH|^~\\&|RIS|CITYHOSP|JUNCTION|RADIOLOGY|20261123081500||ORM^O01|ORM0001|P|2.3.1||||||8859/1\r"
            "PID|1||MRN482913^^^CITYHOSP^MR~7701019876^^^NATIONAL^NI||DOE^JANE^MARIE^^MRS||19770101|F|||12 HARBOUR "
            "ROAD^^SPRINGFIELD^^12345^USA||(555)555-0142|||M||ACCT55012\r"
            "PV1|1|O|RAD^XR1^01^CITYHOSP||||1234^WELBY^MARCUS^J^^DR|||||||||||V20261123001\r"
            "ORC|NW|ORD778812|ACC20261123001||SC||^^^20261123093000^^R||20261123081400|CLERK^ANNA|||RAD^^^CITYHOSP\r"
            "OBR|1|ORD778812|ACC20261123001|CTCHEST^CT Chest without contrast^L|||20261123081400|||||||||1234^WELBY^"
            "MARCUS^J^^DR||ACC20261123001|RP77881201|SPS7788120101||||CT|||^^^20261123093000^^R||||Cough for 3 "
            "weeks, rule out pneumonia\r"
            "ZDS|1.2.826.0.1.3680043.10.1001.20261123.1^JUNCTION^Application^DICOM\r");
    }();
    return text;
}

inline Payload hl7Payload(const std::string& text = sampleOrm()) {
    Payload p;
    p.type = DataType::Hl7v2;
    p.hl7.emplace(hl7::Message::parseOrThrow(text));
    return p;
}

inline Payload textPayload(DataType type, std::string text) {
    Payload p;
    p.type = type;
    p.text = std::move(text);
    return p;
}

// A runtime plus the maps and the payload of one channel.
struct Harness {
    std::shared_ptr<SharedMap> channelMap = std::make_shared<SharedMap>();
    std::shared_ptr<SharedMap> globalMap = std::make_shared<SharedMap>();
    std::shared_ptr<SharedMap> responseMap = std::make_shared<SharedMap>();
    Payload payload = hl7Payload();
    Invocation inv;
    std::unique_ptr<ScriptRuntime> rt;
    std::string loadError;

    explicit Harness(const std::string& source, Limits limits = {},
                     const std::string& chunk = "transforms/test.lua") {
        rt = ScriptRuntime::loadString(source, chunk, limits, &loadError);
        INFO(loadError);
        REQUIRE(rt);
    }

    // The engine's services a call is given (none by default).
    store::WorklistStore* worklist = nullptr;
    orthanc::Servers* orthanc = nullptr;

    CallResult call(std::string_view fn) {
        inv = Invocation{};
        inv.channel = "test";
        inv.message = &payload;
        inv.channelMap = channelMap;
        inv.globalMap = globalMap;
        inv.responseMap = responseMap;
        inv.worklist = worklist;
        inv.orthanc = orthanc;
        return rt->call(fn, inv);
    }

    // Calls and requires success.
    void ok(std::string_view fn) {
        CallResult r = call(fn);
        INFO(r.error);
        REQUIRE(r.ok);
    }
};

// Runs h.call(fn) on another thread and requires it to end within `bound`;
// past it the runtime is interrupted (so that the test ends) and the test fails.
inline CallResult boundedCall(Harness& h, const std::string& fn, std::chrono::milliseconds bound) {
    auto future = std::async(std::launch::async, [&h, fn] { return h.call(fn); });
    if (future.wait_for(bound) != std::future_status::ready) {
        h.rt->interrupt();
        future.wait();
        FAIL(fn << " did not end within " << bound.count() << " ms");
    }
    return future.get();
}

// A call of `fn` that must end within `bound` with an error containing `text`
// at a line of the script; the runtime must then run `next` (a function that
// succeeds) as usual.
inline CallResult requireLimitError(Harness& h, const std::string& fn, const std::string& text,
                                    std::chrono::milliseconds bound, std::string_view next = "fine") {
    CallResult r = boundedCall(h, fn, bound);
    INFO(fn << ": " << r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.error.find(text) != std::string::npos);
    CHECK(r.error.find("transforms/test.lua:") != std::string::npos);
    h.ok(next);
    return r;
}

}  // namespace junction::lua::test
