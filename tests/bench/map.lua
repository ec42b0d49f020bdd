-- The benchmarks' (a) and (b) channels' transform: a typical small mapping,
-- read three fields, set two.
function map(msg)
  local mrn = msg:get("PID-3.1")
  local acc = msg:get("OBR-18")
  local family = msg:get("PID-5.1")
  msg:set("MSH-5", "EMR")
  msg:set("PID-5.1", string.upper(family) .. "")
  return nil
end
