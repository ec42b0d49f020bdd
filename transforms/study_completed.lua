-- A study became stable in Orthanc (channels/orthanc-study-completed.yaml): the
-- worklist item it was made for is COMPLETED and the RIS gets an ORM^O01 status
-- update (ORC-5 CM) carrying the StudyInstanceUID (ZDS-1).
--
-- The item is the one with the study's AccessionNumber, else its
-- StudyInstanceUID, else the scheduled step whose ScheduledProcedureStepID is
-- the PerformedProcedureStepID of one of the study's series (the series' tag,
-- else its first instance's). A study of no item is FILTERED, as is a study
-- whose completion the RIS already got (a study becomes stable again when
-- instances are added later): the response script remembers each study sent.
local studies = require("lib.orthanc_study")
local ris_status = require("lib.ris_status")

local SENT = "ris.completed."  -- store key prefix: a StudyInstanceUID whose completion was sent

local function item_by(filter)
  filter.include_finished = true
  local found = worklist.find(filter)
  return found[1]
end

local function item_by_step(steps)
  if next(steps) == nil then return nil end
  for _, item in ipairs(worklist.find{limit = 100000}) do
    for _, sps in ipairs(item.ScheduledProcedureStepSequence or {}) do
      if steps[sps.ScheduledProcedureStepID or ""] then return item end
    end
  end
  return nil
end

function study_to_ris(msg)
  local study = studies.study(msg)
  local tags = studies.tags(study)
  local uid = tags.StudyInstanceUID or ""
  if store.get(SENT .. uid) then
    return filter("the RIS already has the completion of study " .. uid)
  end
  local item
  if (tags.AccessionNumber or "") ~= "" then item = item_by{AccessionNumber = tags.AccessionNumber} end
  if not item and uid ~= "" then item = item_by{StudyInstanceUID = uid} end
  if not item then
    local api, steps = studies.server(msg), {}
    for _, series in ipairs(studies.series(study)) do
      local step = studies.step_id(api, series)
      if step then steps[step] = true end
    end
    item = item_by_step(steps)
  end
  if not item then
    return filter("no worklist item for study " .. uid .. " (accession " .. (tags.AccessionNumber or "") .. ")")
  end
  local key = (item.AccessionNumber or "") ~= "" and item.AccessionNumber or item.StudyInstanceUID
  if item.status ~= "COMPLETED" then worklist.complete(key) end

  local modality = ""
  for _, series in ipairs(studies.series(study)) do
    modality = (series.MainDicomTags or {}).Modality or modality
    if modality ~= "" then break end
  end
  local step = (item.ScheduledProcedureStepSequence or {})[1] or {}
  maps.response.study = uid
  return ris_status.orm("CM", {
    PatientID = item.PatientID or tags.PatientID, PatientName = item.PatientName or tags.PatientName,
    AccessionNumber = item.AccessionNumber, RequestedProcedureID = item.RequestedProcedureID,
    station = step.ScheduledStationAETitle, when = now("hl7"),
    Modality = modality ~= "" and modality or step.Modality, StudyInstanceUID = uid,
  })
end

-- The RIS took the update: a later stable event of the study sends nothing.
function remember_sent(msg, response, status)
  if status == "SENT" then store.put(SENT .. msg:get("ZDS-1.1"), msg:get("ORC-3")) end
end
