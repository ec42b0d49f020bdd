-- Reports archived next to the images of their study (docs/channels.md, dicomweb):
-- the text of an ORU^R01 becomes a Basic Text SR, a PDF an Encapsulated PDF,
-- each a DICOM instance of the study that Orthanc holds under the report's
-- accession number (a QIDO-RS search), for a dicomweb destination to store
-- with STOW-RS. The server searched is the only one of junction.yaml, or the
-- one named by `server` below.

local server = nil   -- e.g. "main" when junction.yaml names several Orthanc servers
local pacs = server and orthanc.server(server) or orthanc

-- The study with this accession number, as DICOM JSON; an error when there
-- is none, or more than one.
local function study_by_accession(accession)
  if accession == "" then error("the report has no accession number") end
  local found = pacs.qido("studies?AccessionNumber=" .. http.urlencode(accession))
  if #found == 0 then error("no study in Orthanc with accession number " .. accession) end
  if #found > 1 then error(#found .. " studies in Orthanc with accession number " .. accession) end
  return found[1]
end

local function first_value(dataset, tag)
  local attribute = dataset[tag]
  return attribute and attribute.Value and attribute.Value[1] or ""
end

-- ORU^R01: its TX and FT observations, one line each, as a Basic Text SR of the
-- ordered study; the principal result interpreter (OBR-32) is the observer,
-- and a final or corrected result (OBR-25 F or C) is verified by them.
function oru_to_sr(msg)
  local lines = {}
  for _, obx in ipairs(msg:segments("OBX")) do
    local type = obx[2]:S()
    if type == "TX" or type == "FT" then lines[#lines + 1] = obx[5]:S() end
  end
  if #lines == 0 then error("the report has no text (no OBX of type TX or FT)") end

  local accession = msg:get("OBR-18")
  if accession == "" then accession = msg:get("ORC-3.1") end
  if accession == "" then accession = msg:get("OBR-3.1") end
  local study = study_by_accession(accession)
  -- The study must be this patient's: a report filed under another patient's
  -- images is worse than no report at all.
  local patient = msg:get("PID-3.1")
  if first_value(study, "00100020") ~= patient then
    error("the study with accession number " .. accession .. " is of patient " .. first_value(study, "00100020") ..
          ", the report of patient " .. patient)
  end

  local observer = msg:get("OBR-32.1.2")
  if msg:get("OBR-32.1.3") ~= "" then observer = observer .. "^" .. msg:get("OBR-32.1.3") end
  local status = msg:get("OBR-25")
  return dicom.text_sr(study, table.concat(lines, "\r\n"), {
    observer = observer ~= "" and observer or nil,
    verified = observer ~= "" and (status == "F" or status == "C"),
    datetime = msg:get("OBR-22") ~= "" and msg:get("OBR-22") or nil,
  })
end

-- A PDF (a channel with data_type raw) whose document information names the
-- accession number in /Subject, and the title in /Title: an Encapsulated PDF.
function pdf_to_dicom(pdf)
  local accession = pdf:match("/Subject%s*%((.-)%)")
  if not accession then error("the PDF names no accession number (/Subject of its document information)") end
  return dicom.wrap_pdf(study_by_accession(accession), pdf, {title = pdf:match("/Title%s*%((.-)%)")})
end

-- A dicomweb destination's response: the STOW-RS answer (DICOM JSON).
function archived(msg, response, status)
  if status ~= "SENT" then
    log.warn("report not archived:", response)
    return
  end
  local stored = json.decode(response)["00081199"]
  for _, item in ipairs(stored and stored.Value or {}) do
    log.info("report archived as instance", first_value(item, "00081155"))
  end
end
