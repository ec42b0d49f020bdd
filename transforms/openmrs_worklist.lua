-- The OpenMRS imaging module's worklist, served by Junction's modality worklist
-- instead of an Orthanc Python plugin (channels/openmrs-worklist.yaml).
--
-- Each run of the channel's schedule reads the procedure requests OpenMRS
-- lists (GET <openmrs_url>/ws/rest/v1/worklist/requests, basic auth with the
-- service account): a JSON array of datasets in Orthanc's create-dicom form
-- (DICOM keyword -> value, sequences as arrays of objects). The transform turns
-- them into the worklist destination's content: every listed request is
-- upserted (an item already in progress keeps its status), and a request
-- OpenMRS no longer lists whose item is still SCHEDULED is cancelled. A
-- request OpenMRS cannot give, or gives malformed, fails the run (an ERROR
-- message with the reason) and changes nothing: the previous items stay.
--
-- vars: openmrs_url (e.g. http://emr:8080/openmrs), openmrs_user, openmrs_password.

local LISTED = "openmrs.worklist.listed"  -- store key: the keys of the requests listed last time

local openmrs = require("lib.openmrs")

-- The requests OpenMRS lists now, or an error saying why not.
local function listed_requests()
  local requests, url = openmrs.get("/worklist/requests")
  if type(requests) ~= "table" or (next(requests) ~= nil and requests[1] == nil) then
    error("GET " .. url .. ": the answer is not a JSON array of worklist requests", 0)
  end
  for i, request in ipairs(requests) do
    if type(request) ~= "table" then
      error(string.format("GET %s: request %d is not an object", url, i), 0)
    end
    if (request.AccessionNumber or "") == "" and (request.StudyInstanceUID or "") == "" then
      error(string.format("GET %s: request %d has neither AccessionNumber nor StudyInstanceUID", url, i), 0)
    end
  end
  return requests
end

-- The key the worklist destination finds an item by.
local function key_of(request)
  if (request.AccessionNumber or "") ~= "" then return request.AccessionNumber end
  return request.StudyInstanceUID
end

-- schedule run -> worklist destination content (an array of upserts and cancels)
function sync_requests(run)
  local requests = listed_requests()
  local items, keys, now_listed = {}, {}, {}
  for _, request in ipairs(requests) do
    request.action = "upsert"
    items[#items + 1] = request
    local key = key_of(request)
    if not now_listed[key] then
      now_listed[key] = true
      keys[#keys + 1] = key
    end
  end
  for _, key in ipairs(json.decode(store.get(LISTED) or "[]")) do
    if not now_listed[key] then
      local found = worklist.find{AccessionNumber = key}
      if #found == 0 then found = worklist.find{StudyInstanceUID = key} end
      if #found > 0 and found[1].status == "SCHEDULED" then
        items[#items + 1] = {action = "cancel", AccessionNumber = found[1].AccessionNumber,
                             StudyInstanceUID = found[1].StudyInstanceUID}
      end
    end
  end
  store.put(LISTED, json.encode(json.array(keys)))
  if #items == 0 then return filter("OpenMRS lists no worklist requests") end
  return json.array(items)
end
