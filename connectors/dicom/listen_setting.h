// The `host` setting both DICOM sources (`dicom`, `dicom_mwl`) take: the
// address their server listens on. No DICOM toolkit types here.
#pragma once

#include <string>

#include "connectors/dicom/acceptor.h"
#include "engine/config/node.h"

namespace junction::connectors {

inline config::Setting dicomHostSetting() {
    return {config::Setting::Type::String, "host", false,
            "IPv4 address to listen on (default 0.0.0.0: every interface)"};
}

// The source's `host`, checked (a config error at its line when it is no
// IPv4 address); 0.0.0.0 when absent.
inline std::string readDicomHost(const config::Node& conf) {
    auto n = conf.find("host");
    if (!n) return "0.0.0.0";
    std::string host = n->asString("host");
    if (auto why = dicom::detail::checkListenHost(host); !why.empty()) n->fail("host: " + why, "e.g. host: 127.0.0.1");
    return host;
}

}  // namespace junction::connectors
