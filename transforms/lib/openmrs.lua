-- OpenMRS's REST web services (v1) as the shipped OpenMRS channels call them:
-- the base URL and the service account from the channel's vars (openmrs_url,
-- openmrs_user, openmrs_password), and errors that say which call failed.
local M = {}

function M.setting(name)
  local v = vars[name]
  if v == nil or v == "" then error("vars." .. name .. " is not set in the channel file", 0) end
  return v
end

function M.url(path)
  return M.setting("openmrs_url") .. "/ws/rest/v1" .. path
end

function M.account()
  return {username = M.setting("openmrs_user"), password = vars.openmrs_password or ""}
end

-- GET of a REST resource: the decoded JSON answer, or an error naming the call.
function M.get(path)
  local url = M.url(path)
  local r = http.get(url, {auth = M.account(), timeout = 30})
  if r.status ~= 200 then
    error(string.format("GET %s answered %d: %s", url, r.status, r.body:sub(1, 300)), 0)
  end
  local ok, value = pcall(json.decode, r.body)
  if not ok then error("GET " .. url .. ": the answer is not JSON: " .. tostring(value), 0) end
  return value, url
end

-- The uuid of the patient with this identifier (an MRN), or an error.
function M.patient_uuid(identifier)
  local found = M.get("/patient?identifier=" .. http.urlencode(identifier))
  local first = type(found) == "table" and type(found.results) == "table" and found.results[1]
  if not first or not first.uuid then
    error("OpenMRS has no patient with identifier " .. identifier, 0)
  end
  return first.uuid
end

return M
