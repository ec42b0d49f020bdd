-- Modality Performed Procedure Steps (MPPS N-CREATE / N-SET from the modalities,
-- received by the dicom_mwl source) become HL7 v2 order status updates for the
-- RIS: ORM^O01 with ORC-1 SC and ORC-5 IP (in progress), CM (completed) or DC
-- (discontinued). The worklist item's status has already changed by then.
--
--   ScheduledStepAttributesSequence[1].AccessionNumber     ORC-3, OBR-18
--   ScheduledStepAttributesSequence[1].RequestedProcedureID OBR-19
--   ScheduledStepAttributesSequence[1].StudyInstanceUID    ZDS-1
--   PatientID / PatientName                                PID-3 / PID-5
--   Modality, PerformedStationAETitle                      OBR-24, OBR-21
--   PerformedProcedureStep End (else Start) Date + Time    OBR-22 (status change time)

local ris_status = require("lib.ris_status")

local ORDER_STATUS = { ["IN PROGRESS"] = "IP", COMPLETED = "CM", DISCONTINUED = "DC" }

-- Repeated N-SETs that only add attributes (no status change) are not news for the RIS.
local function status_of(ds)
  return ORDER_STATUS[ds.PerformedProcedureStepStatus or ""]
end

function mpps_to_orm(msg)
  local ds = dicom.keywords(msg)
  local status = status_of(ds)
  if not status then
    filter("MPPS " .. tostring(ds.sopInstanceUid) .. " has no IN PROGRESS / COMPLETED / DISCONTINUED status")
    return
  end
  local step = (ds.ScheduledStepAttributesSequence or {})[1] or {}
  local accession = step.AccessionNumber or ""
  local when = ds.PerformedProcedureStepEndDate or ""
  if status == "IP" or when == "" then
    when = (ds.PerformedProcedureStepStartDate or "") .. (ds.PerformedProcedureStepStartTime or "")
  else
    when = when .. (ds.PerformedProcedureStepEndTime or "")
  end

  return ris_status.orm(status, {
    PatientID = ds.PatientID, PatientName = ds.PatientName, AccessionNumber = accession,
    RequestedProcedureID = step.RequestedProcedureID, station = ds.PerformedStationAETitle or ds.callingAe,
    when = when, Modality = ds.Modality, StudyInstanceUID = step.StudyInstanceUID,
  })
end
