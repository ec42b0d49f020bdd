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
--   ZDS-1 or IPC-3          StudyInstanceUID (a new UID when a new order has none;
--                           an update without one keeps the item's)
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
-- Several orders in one message (ORC/OBR groups, several IPC per OBR) give an
-- array of items, which the worklist destination applies in order.

-- An order message may carry several orders (ORC/OBR groups, in OMI^O23 each
-- with TQ1 and IPC segments): each group becomes one item. `get(path)` reads
-- a path of the group's own ORC, TQ1, OBR, IPC (and ZDS when there is one per
-- order); other segments (MSH, PID, PV1) are shared.
local function groups(msg)
  local out, counts, current = {}, {}, {}
  for _, seg in ipairs(msg:segments()) do
    local name = seg:name()
    counts[name] = (counts[name] or 0) + 1
    if name == "ORC" then
      current = { ORC = counts.ORC, TQ1 = false, IPC = false }
    elseif name == "TQ1" then
      current.TQ1 = current.TQ1 or counts.TQ1
    elseif name == "OBR" then
      current.OBR = counts.OBR
      current.IPC = false
      out[#out + 1] = current
      current = { ORC = current.ORC, TQ1 = current.TQ1, IPC = false }
    elseif name == "IPC" and #out > 0 then
      local last = out[#out]
      if last.IPC then  -- a further scheduled step of the same order: its own item
        local step = {}
        for k, v in pairs(last) do step[k] = v end
        step.IPC = counts.IPC
        out[#out + 1] = step
      else
        last.IPC = counts.IPC
      end
    end
  end
  local perOrder = (counts.ZDS or 0) == #out and #out > 1
  for i, g in ipairs(out) do
    if perOrder then g.ZDS = i end
  end
  return out
end

local function getter(msg, group)
  return function(path)
    local seg, rest = path:match("^(%w%w%w)(%-.*)$")
    local index = group[seg]
    if index == false then return "" end
    if index then return msg:get(seg .. "[" .. index .. "]" .. rest) end
    return msg:get(path)
  end
end

-- XPN / XCN to a DICOM person name (components after the id for XCN).
local function person_name(get, path, first)
  local family = get(path .. "." .. first)
  local given = get(path .. "." .. (first + 1))
  local middle = get(path .. "." .. (first + 2))
  local suffix = get(path .. "." .. (first + 3))
  local prefix = get(path .. "." .. (first + 4))
  local pn = table.concat({family, given, middle, prefix, suffix}, "^")
  return (pn:gsub("%^+$", ""))
end

local function first_nonempty(get, ...)
  for _, path in ipairs({...}) do
    local v = get(path)
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

local function keys(get)
  return first_nonempty(get, "OBR-18", "IPC-1.1"), first_nonempty(get, "ZDS-1.1", "IPC-3.1")
end

-- `new_order`: a study UID is made up when the order has none; an update
-- without one leaves it out and the worklist destination keeps the item's UID.
local function item(get, new_order)
  local accession, uid = keys(get)
  -- TQ1-7 (v2.5) or the start of OBR-27 timing/quantity (v2.3): YYYYMMDD[HHMM[SS]]
  local start = first_nonempty(get, "TQ1-7.1", "OBR-27.4.1")
  local date, time = start:sub(1, 8), start:sub(9, 14)
  local referring = person_name(get, "OBR-16", 2)
  if referring == "" then referring = person_name(get, "PV1-8", 2) end
  local code = get("OBR-4.1")
  local description = get("OBR-4.2")
  local reason = get("OBR-31.2")
  if reason == "" then reason = get("OBR-31.1") end
  local it = {
    SpecificCharacterSet = CHARSETS[get("MSH-18")] or "",
    PatientID = get("PID-3.1"),
    IssuerOfPatientID = get("PID-3.4.1"),
    PatientName = person_name(get, "PID-5", 1),
    PatientBirthDate = get("PID-7.1"):sub(1, 8),
    PatientSex = sex(get("PID-8")),
    AccessionNumber = accession,
    RequestedProcedureID = first_nonempty(get, "OBR-19", "IPC-2.1"),
    RequestedProcedureDescription = description,
    StudyInstanceUID = uid ~= "" and uid or (new_order and dicom.uid() or nil),
    ReferringPhysicianName = referring,
    PlacerOrderNumberImagingServiceRequest = get("ORC-2.1"),
    FillerOrderNumberImagingServiceRequest = get("ORC-3.1"),
    ReasonForTheRequestedProcedure = reason,
    ScheduledProcedureStepSequence = {{
      Modality = first_nonempty(get, "IPC-5.1", "OBR-24"),
      ScheduledStationAETitle = get("IPC-9.1"),
      ScheduledProcedureStepStartDate = date,
      ScheduledProcedureStepStartTime = time,
      ScheduledProcedureStepID = first_nonempty(get, "OBR-20", "IPC-4.1"),
      ScheduledProcedureStepDescription = description,
    }},
  }
  if code ~= "" then
    it.RequestedProcedureCodeSequence = {{
      CodeValue = code, CodingSchemeDesignator = get("OBR-4.3"), CodeMeaning = description,
    }}
  end
  return it
end

-- A status change of the items of an order (by accession, else study UID).
local function change(get, action)
  local accession, uid = keys(get)
  if accession == "" and uid == "" then
    error("ORC-1 " .. get("ORC-1") .. ": the order has neither accession number (OBR-18/IPC-1) nor study UID")
  end
  return { action = action, AccessionNumber = accession, StudyInstanceUID = uid }
end

local SC_ACTIONS = { IP = "in_progress", CM = "complete", CA = "cancel", DC = "discontinue" }

-- What one order asks of the worklist, or nil.
local function for_order(get)
  local control = get("ORC-1")
  if control == "NW" then
    local it = item(get, true)
    it.status = "SCHEDULED"  -- a new order (again): scheduled, even if it was cancelled
    return it
  elseif control == "XO" then
    return item(get)         -- an update: a step in progress stays in progress
  elseif control == "CA" or control == "DC" or control == "OC" then
    return change(get, "cancel")
  elseif control == "SC" then
    local action = SC_ACTIONS[get("ORC-5")]
    if action then return change(get, action) end
    return item(get)
  end
end

-- The channel's transformer: one keyword table, or an array of them when the
-- message carries several orders.
function to_worklist(msg)
  local kind = msg:get("MSH-9.1")
  if kind ~= "ORM" and kind ~= "OMI" then
    filter(kind .. "^" .. msg:get("MSH-9.2") .. " is not an order")
    return
  end
  local out = {}
  for _, group in ipairs(groups(msg)) do
    out[#out + 1] = for_order(getter(msg, group))
  end
  if #out == 0 then
    filter("order control '" .. msg:get("ORC-1") .. "' does not change the worklist")
    return
  end
  if #out == 1 then return out[1] end
  return out
end
