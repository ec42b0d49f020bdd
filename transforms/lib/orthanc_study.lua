-- Reading the message of an `orthanc` source about a study: the study's tags,
-- its series in order, and an instance's ID, for the channels that act when a
-- study becomes stable in Orthanc.
local M = {}

-- The study resource of the message ({"change", "server", "resource"}), or an
-- error naming what the message is instead.
function M.study(msg)
  local study = msg.resource
  if type(study) ~= "table" or study.Type ~= "Study" then
    error("not a study change of an orthanc source: " .. tostring(msg.change and msg.change.ChangeType), 0)
  end
  return study
end

-- The study's tags and its patient's, in one table (StudyInstanceUID,
-- AccessionNumber, PatientID, PatientName ...).
function M.tags(study)
  local t = {}
  for k, v in pairs(study.PatientMainDicomTags or {}) do t[k] = v end
  for k, v in pairs(study.MainDicomTags or {}) do t[k] = v end
  return t
end

local function number(tags, key)
  return tonumber((tags or {})[key] or "") or math.huge
end

-- The study's series (objects with MainDicomTags and Instances), by SeriesNumber.
function M.series(study)
  local list = {}
  for _, s in ipairs(study.Series or {}) do
    if type(s) == "table" then list[#list + 1] = s end
  end
  table.sort(list, function(a, b)
    local na, nb = number(a.MainDicomTags, "SeriesNumber"), number(b.MainDicomTags, "SeriesNumber")
    if na ~= nb then return na < nb end
    return (a.ID or "") < (b.ID or "")
  end)
  return list
end

-- The Orthanc ID of a series' first instance (by InstanceNumber when the
-- instances are expanded), or nil.
function M.first_instance(series)
  local first, best = nil, math.huge
  for _, i in ipairs(series.Instances or {}) do
    if type(i) ~= "table" then return first or i end  -- IDs only: Orthanc's order
    local n = number(i.MainDicomTags, "InstanceNumber")
    if not first or n < best then first, best = i.ID, n end
  end
  return first
end

-- The REST functions of the Orthanc server the message came from (orthanc.get ...).
function M.server(msg)
  return orthanc.server(msg.server)
end

-- The PerformedProcedureStepID of a series: its own tag, else its first
-- instance's (read from `api`, the server's functions).
function M.step_id(api, series)
  local step = (series.MainDicomTags or {}).PerformedProcedureStepID
  if (step or "") ~= "" then return step end
  local instance = M.first_instance(series)
  if not instance then return nil end
  local tags = api.get("/instances/" .. instance .. "/tags?simplify")
  step = tags.PerformedProcedureStepID
  if (step or "") ~= "" then return step end
  return nil
end

return M
