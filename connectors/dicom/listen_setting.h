// Settings the DICOM connectors share: the `host` both sources (`dicom`,
// `dicom_mwl`) listen on and the checks of AE titles. No DICOM toolkit types here.
#pragma once

#include <string>
#include <vector>

#include "connectors/dicom/acceptor.h"
#include "connectors/dicom/mwl_server.h"
#include "engine/config/config_map.h"

namespace junction::connectors {

// `host` of a DICOM source: an IPv4 address of the machine (a config error at
// its line otherwise).
template <class S>
typename config::Map<S>::Entry dicomHostEntry() {
    return {"host", &S::host,
            config::check(
                [](const std::string& host) {
                    std::string why = dicom::detail::checkListenHost(host);
                    return why.empty() ? why : "host: " + why;
                },
                "e.g. host: 127.0.0.1"),
            "IPv4 address to listen on (0.0.0.0: every interface)"};
}

// An AE title setting: "NAME: why" at the value when it is not one.
inline auto aeTitleCheck(std::string name) {
    return config::check([name](const std::string& ae) {
        std::string why = dicom::checkAeTitle(ae);
        return why.empty() ? why : name + ": " + why;
    });
}

// A list of AE titles: "NAME: 'TITLE': why" for the first that is not one.
inline auto aeTitlesCheck(std::string name) {
    return config::check([name](const std::vector<std::string>& titles) {
        for (const auto& ae : titles)
            if (std::string why = dicom::checkAeTitle(ae); !why.empty()) return name + ": '" + ae + "': " + why;
        return std::string();
    });
}

}  // namespace junction::connectors
