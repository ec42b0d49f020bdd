-- RIS orders (ORM^O01, OMI^O23) become modality worklist items, following the
-- IHE Scheduled Workflow mapping of HL7 v2 to the DICOM Modality Worklist:
--
--   PID-3 (first CX.1)      PatientID (PID-3.4 IssuerOfPatientID)
--   PID-5 (XPN)             PatientName  family^given^middle^prefix^suffix
--   PID-7 / PID-8           PatientBirthDate / PatientSex
--   OBR-18 or IPC-1         AccessionNumber
--   OBR-19 or IPC-2         RequestedProcedureID
--   OBR-4                   RequestedProcedureDescription (OBR-4.2) and
--                           RequestedProcedureCodeSequence (OBR-4.1, OBR-4.3, OBR-4.2)
--   ZDS-1 or IPC-3          StudyInstanceUID (a new UID when the order has none)
--   OBR-16 or PV1-8 (XCN)   ReferringPhysicianName
--   OBR-20 or IPC-4         ScheduledProcedureStepID
--   IPC-5 or OBR-24         Modality
--   TQ1-7 or OBR-27.4       ScheduledProcedureStepStartDate / ...StartTime
--   IPC-9                   ScheduledStationAETitle
--   ORC-2 / ORC-3           placer / filler order numbers
--
-- ORC-1 decides what happens: NW creates, XO updates, CA / DC / OC cancel;
-- SC follows the order status ORC-5 (IP in progress, CM completed, CA cancelled,
-- anything else updates). Other order controls leave the worklist alone.

-- XPN / XCN to a DICOM person name (components after the id for XCN).
local function person_name(msg, path, first)
  local family = msg:get(path .. "." .. first)
  local given = msg:get(path .. "." .. (first + 1))
  local middle = msg:get(path .. "." .. (first + 2))
  local suffix = msg:get(path .. "." .. (first + 3))
  local prefix = msg:get(path .. "." .. (first + 4))
  local pn = table.concat({family, given, middle, prefix, suffix}, "^")
  return (pn:gsub("%^+$", ""))
end

local function first_nonempty(msg, ...)
  for _, path in ipairs({...}) do
    local v = msg:get(path)
    if v ~= "" then return v end
  end
  return ""
end

-- DICOM sex codes: M, F or O.
local function sex(code)
  if code == "M" or code == "F" or code == "" then return code end
  return "O"
end

local CHARSETS = { ["8859/1"] = "ISO_IR 100", ["UNICODE UTF-8"] = "ISO_IR 192", ["ASCII"] = "" }

local function keys(msg)
  return first_nonempty(msg, "OBR-18", "IPC-1.1"), first_nonempty(msg, "ZDS-1.1", "IPC-3.1")
end

local function item(msg)
  local accession, uid = keys(msg)
  -- TQ1-7 (v2.5) or the start of OBR-27 timing/quantity (v2.3): YYYYMMDD[HHMM[SS]]
  local start = first_nonempty(msg, "TQ1-7.1", "TQ1-7", "OBR-27.4.1", "OBR-27.4")
  local date, time = start:sub(1, 8), start:sub(9, 14)
  local referring = person_name(msg, "OBR-16", 2)
  if referring == "" then referring = person_name(msg, "PV1-8", 2) end
  local code = msg:get("OBR-4.1")
  local description = msg:get("OBR-4.2")
  local it = {
    SpecificCharacterSet = CHARSETS[msg:get("MSH-18")] or "",
    PatientID = msg:get("PID-3.1"),
    IssuerOfPatientID = msg:get("PID-3.4.1"),
    PatientName = person_name(msg, "PID-5", 1),
    PatientBirthDate = msg:get("PID-7.1"):sub(1, 8),
    PatientSex = sex(msg:get("PID-8")),
    AccessionNumber = accession,
    RequestedProcedureID = first_nonempty(msg, "OBR-19", "IPC-2.1"),
    RequestedProcedureDescription = description,
    StudyInstanceUID = uid ~= "" and uid or dicom.uid(),
    ReferringPhysicianName = referring,
    PlacerOrderNumberImagingServiceRequest = msg:get("ORC-2.1"),
    FillerOrderNumberImagingServiceRequest = msg:get("ORC-3.1"),
    ReasonForTheRequestedProcedure = msg:get("OBR-31.2") ~= "" and msg:get("OBR-31.2") or msg:get("OBR-31.1"),
    ScheduledProcedureStepSequence = {{
      Modality = first_nonempty(msg, "IPC-5.1", "OBR-24"),
      ScheduledStationAETitle = msg:get("IPC-9.1"),
      ScheduledProcedureStepStartDate = date,
      ScheduledProcedureStepStartTime = time,
      ScheduledProcedureStepID = first_nonempty(msg, "OBR-20", "IPC-4.1"),
      ScheduledProcedureStepDescription = description,
    }},
  }
  if code ~= "" then
    it.RequestedProcedureCodeSequence = {{
      CodeValue = code, CodingSchemeDesignator = msg:get("OBR-4.3"), CodeMeaning = description,
    }}
  end
  return it
end

-- A status change of the items of this order (by accession, else study UID).
local function change(msg, action)
  local accession, uid = keys(msg)
  if accession == "" and uid == "" then
    error("ORC-1 " .. msg:get("ORC-1") .. ": the order has neither accession number (OBR-18/IPC-1) nor study UID")
  end
  return { action = action, AccessionNumber = accession, StudyInstanceUID = uid }
end

local SC_ACTIONS = { IP = "in_progress", CM = "complete", CA = "cancel", DC = "discontinue" }

function to_worklist(msg)
  local kind = msg:get("MSH-9.1")
  if kind ~= "ORM" and kind ~= "OMI" then
    filter(kind .. "^" .. msg:get("MSH-9.2") .. " is not an order")
    return
  end
  local control = msg:get("ORC-1")
  if control == "NW" or control == "XO" then
    return item(msg)
  elseif control == "CA" or control == "DC" or control == "OC" then
    return change(msg, "cancel")
  elseif control == "SC" then
    local action = SC_ACTIONS[msg:get("ORC-5")]
    if action then return change(msg, action) end
    return item(msg)
  end
  filter("order control '" .. control .. "' does not change the worklist")
end
