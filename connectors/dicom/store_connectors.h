// The `dicom` source and destination factories (registered by registerDicom),
// and the destination as seen by callers that check a peer (tests, the admin
// API): a Destination that also answers C-ECHO.
#pragma once

#include "engine/core/connector.h"

namespace junction::connectors {

class DicomStoreDestination : public core::Destination {
public:
    // C-ECHO on a new association: Ok when the peer answers success, Retry
    // when it cannot be reached or refuses the association.
    virtual core::SendResult echo() = 0;
    // Associations opened so far (a kept association is reused across sends).
    virtual std::uint64_t associationsOpened() const = 0;
};

std::unique_ptr<core::SourceFactory> dicomSourceFactory();
std::unique_ptr<core::DestinationFactory> dicomDestinationFactory();

}  // namespace junction::connectors
