-- HL7 v2 order status updates for the RIS: ORM^O01 with ORC-1 SC and ORC-5 the
-- order status (IP in progress, CM completed, DC discontinued), as the
-- modality-worklist channel (MPPS) and the orthanc-study-completed channel
-- (a study stable in Orthanc) send them.
--
--   PatientID / PatientName    PID-3.1 / PID-5
--   AccessionNumber            ORC-3, OBR-3, OBR-18
--   RequestedProcedureID       OBR-19
--   station                    OBR-21
--   when (YYYYMMDDHHMMSS)      OBR-22 (status change time)
--   Modality                   OBR-24
--   StudyInstanceUID           ZDS-1 (^JUNCTION^Application^DICOM)
local M = {}

function M.orm(status, t)
  local accession = t.AccessionNumber or ""
  local orm = hl7.new("ORM^O01", "2.3.1")
  orm:set("MSH-3", "JUNCTION")
  orm:set("MSH-4", "RADIOLOGY")
  orm:set("MSH-5", "RIS")
  orm:add("PID")
  orm:set("PID-1", "1")
  orm:set("PID-3.1", t.PatientID or "")
  orm:set("PID-5", t.PatientName or "")
  orm:add("ORC")
  orm:set("ORC-1", "SC")
  orm:set("ORC-3", accession)
  orm:set("ORC-5", status)
  orm:add("OBR")
  orm:set("OBR-1", "1")
  orm:set("OBR-3", accession)
  orm:set("OBR-18", accession)
  orm:set("OBR-19", t.RequestedProcedureID or "")
  orm:set("OBR-21", t.station or "")
  orm:set("OBR-22", ((t.when or ""):gsub("%..*$", "")))  -- no fractional seconds in an HL7 TS here
  orm:set("OBR-24", t.Modality or "")
  orm:set("OBR-25", status == "CM" and "R" or "")  -- results to come once read
  if (t.StudyInstanceUID or "") ~= "" then
    orm:add("ZDS")
    orm:set("ZDS-1.1", t.StudyInstanceUID)
    orm:set("ZDS-1.2", "JUNCTION")
    orm:set("ZDS-1.3", "Application")
    orm:set("ZDS-1.4", "DICOM")
  end
  return orm
end

return M
