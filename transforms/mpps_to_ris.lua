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
  when = when:gsub("%..*$", "")  -- no fractional seconds in an HL7 TS here

  local orm = hl7.new("ORM^O01", "2.3.1")
  orm:set("MSH-3", "JUNCTION")
  orm:set("MSH-4", "RADIOLOGY")
  orm:set("MSH-5", "RIS")
  orm:add("PID")
  orm:set("PID-1", "1")
  orm:set("PID-3.1", ds.PatientID or "")
  orm:set("PID-5", ds.PatientName or "")
  orm:add("ORC")
  orm:set("ORC-1", "SC")
  orm:set("ORC-3", accession)
  orm:set("ORC-5", status)
  orm:add("OBR")
  orm:set("OBR-1", "1")
  orm:set("OBR-3", accession)
  orm:set("OBR-18", accession)
  orm:set("OBR-19", step.RequestedProcedureID or "")
  orm:set("OBR-21", ds.PerformedStationAETitle or ds.callingAe or "")
  orm:set("OBR-22", when)
  orm:set("OBR-24", ds.Modality or "")
  orm:set("OBR-25", status == "CM" and "R" or "")  -- results to come once read
  if (step.StudyInstanceUID or "") ~= "" then
    orm:add("ZDS")
    orm:set("ZDS-1.1", step.StudyInstanceUID)
    orm:set("ZDS-1.2", "JUNCTION")
    orm:set("ZDS-1.3", "Application")
    orm:set("ZDS-1.4", "DICOM")
  end
  return orm
end
