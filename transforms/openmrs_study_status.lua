-- A study stable in Orthanc tells OpenMRS its procedure step was performed
-- (channels/openmrs-study-status.yaml), as the OpenMRS imaging module's
-- Orthanc plugin does: POST /ws/rest/v1/worklist/updaterequeststatus
-- ?studyInstanceUID=...&performedProcedureStepID=... with no body, the step
-- being the PerformedProcedureStepID of the study's series (the series' tag,
-- else its first instance's). A study without one is FILTERED. A study whose
-- series carry several steps reports the first, in series order.
local studies = require("lib.orthanc_study")

function study_to_status(msg)
  local study = studies.study(msg)
  local tags = studies.tags(study)
  local api = studies.server(msg)
  for _, series in ipairs(studies.series(study)) do
    local step = studies.step_id(api, series)
    if step then
      return {studyInstanceUID = tags.StudyInstanceUID, performedProcedureStepID = step}
    end
  end
  return filter("study " .. (tags.StudyInstanceUID or study.ID) .. " has no PerformedProcedureStepID")
end
