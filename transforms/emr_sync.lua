-- Orthanc's patients and studies kept in step in an EMR over its REST API
-- (channels/orthanc-emr-sync.yaml), as GNU Health's Orthanc module does: each
-- patient and study that changed in Orthanc since the last run is upserted,
-- a patient under its MRN (Orthanc's PatientID), a study under its
-- StudyInstanceUID with its patient's MRN, so that the EMR links it to its
-- patient record.
--
--   PUT {emr}/api/patients/{mrn}   {"mrn", "name", "birthDate", "sex", "orthanc": {"server", "id"}}
--   PUT {emr}/api/studies/{uid}    {"uid", "mrn", "accession", "date", "time", "description",
--                               "modalities", "referringPhysician", "series", "instances",
--                               "orthanc": {"server", "id"}}
local function date(d)  -- DICOM DA 20261207 -> 2026-12-07
  if not d or #d ~= 8 then return d or "" end
  return d:sub(1, 4) .. "-" .. d:sub(5, 6) .. "-" .. d:sub(7, 8)
end

local function patient_of(resource, server)
  local t = resource.MainDicomTags or {}
  return {mrn = t.PatientID or "", name = t.PatientName or "", birthDate = date(t.PatientBirthDate),
          sex = t.PatientSex or "", orthanc = {server = server, id = resource.ID}}
end

local function study_of(resource, server)
  local t, p = resource.MainDicomTags or {}, resource.PatientMainDicomTags or {}
  local modalities, seen, instances = {}, {}, 0
  for _, series in ipairs(resource.Series or {}) do
    local m = type(series) == "table" and (series.MainDicomTags or {}).Modality
    if m and not seen[m] then seen[m] = true; modalities[#modalities + 1] = m end
    instances = instances + (type(series) == "table" and #(series.Instances or {}) or 0)
  end
  table.sort(modalities)
  return {uid = t.StudyInstanceUID or "", mrn = p.PatientID or "", accession = t.AccessionNumber or "",
          date = date(t.StudyDate), time = t.StudyTime or "", description = t.StudyDescription or "",
          modalities = json.array(modalities), referringPhysician = t.ReferringPhysicianName or "",
          series = #(resource.Series or {}), instances = instances,
          orthanc = {server = server, id = resource.ID}}
end

function to_emr(msg)
  local r = msg.resource
  if type(r) ~= "table" then return filter("nothing to upsert: " .. msg.change.ChangeType) end
  if r.Type == "Patient" then
    route("patients")
    return patient_of(r, msg.server)
  elseif r.Type == "Study" then
    route("studies")
    return study_of(r, msg.server)
  end
  return filter("not a patient or a study: " .. tostring(r.Type))
end
