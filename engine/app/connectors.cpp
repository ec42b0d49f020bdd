// The connector types the app offers: one registration line per type, each
// type a library under connectors/. A new type is added here (and linked in
// engine/app/CMakeLists.txt); nothing in the engine core changes.
#include "engine/app/connectors.h"

#include "connectors/channel/channel_connectors.h"
#include "connectors/dicom/dicom_connectors.h"
#include "connectors/dicomweb/dicomweb_connectors.h"
#include "connectors/file/file_connectors.h"
#include "connectors/http/http_connectors.h"
#include "connectors/mllp/mllp_connectors.h"
#include "connectors/orthanc/orthanc_connectors.h"
#include "connectors/schedule/schedule_connectors.h"
#include "connectors/worklist/worklist_connectors.h"

namespace junction::app {

core::ConnectorRegistry builtinConnectors() {
    core::ConnectorRegistry registry;
    connectors::registerMllp(registry);
    connectors::registerFile(registry);
    connectors::registerChannel(registry);
    connectors::registerWorklist(registry);
    connectors::registerDicom(registry);
    connectors::registerSchedule(registry);
    connectors::registerDicomweb(registry);
    connectors::registerHttp(registry);
    connectors::registerOrthanc(registry);
    return registry;
}

}  // namespace junction::app
