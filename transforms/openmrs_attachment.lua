-- Each study stable in Orthanc becomes one attachment in the patient's OpenMRS
-- record (channels/orthanc-openmrs-attachment.yaml): the preview (PNG) of the
-- first instance of the study's first series, captioned with the study's URL
-- in the Orthanc viewer, posted to /ws/rest/v1/attachment as
-- multipart/form-data with the parts patient (the patient's uuid, found by
-- GET /ws/rest/v1/patient?identifier=PatientID), fileCaption and file.
--
-- Exactly one attachment per study: the response script keeps each study's
-- caption once OpenMRS took it, and a study that becomes stable again (more
-- instances arrived), or a change seen again after a restart, is FILTERED.
--
-- vars: openmrs_url, openmrs_user, openmrs_password, viewer_url (the Orthanc
-- viewer's address of a study, {id} standing for its Orthanc ID and {uid} for
-- its StudyInstanceUID).
local openmrs = require("lib.openmrs")
local studies = require("lib.orthanc_study")

local SENT = "openmrs.attachment."  -- store key prefix, then the caption: the study's viewer URL

local function caption_of(study, tags)
  local template = openmrs.setting("viewer_url")
  return (template:gsub("{id}", study.ID):gsub("{uid}", tags.StudyInstanceUID or ""))
end

function study_to_attachment(msg)
  local study = studies.study(msg)
  local tags = studies.tags(study)
  local caption = caption_of(study, tags)
  if store.get(SENT .. caption) then
    return filter("study " .. (tags.StudyInstanceUID or study.ID) .. " is already attached in OpenMRS")
  end
  local first = studies.series(study)[1]
  local instance = first and studies.first_instance(first)
  if not instance then error("study " .. study.ID .. " has no instance to preview", 0) end
  local png = studies.server(msg).preview(instance)
  local patient = openmrs.patient_uuid(tags.PatientID or "")
  return {
    {name = "patient", value = patient},
    {name = "fileCaption", value = caption},
    {name = "file", filename = "preview.png", content_type = "image/png", base64 = base64.encode(png)},
  }
end

-- OpenMRS took the attachment: the study is not attached again.
function remember_attachment(parts, response, status)
  if status ~= "SENT" then return end
  for _, part in ipairs(parts) do
    if part.name == "fileCaption" then
      local ok, answer = pcall(function() return json.decode(json.decode(response).body) end)
      store.put(SENT .. part.value, ok and type(answer) == "table" and answer.uuid or "sent")
    end
  end
end
