-- RIS orders: keep orders (ORM^O01, OMI^O23), normalise names and route
-- cancellations apart.

function is_order(msg)
  local t = msg:get("MSH-9.1")
  return t == "ORM" or t == "OMI"
end

function normalize_order(msg)
  -- Family and given names in upper case, as the modalities expect them.
  msg:set("PID-5.1.1", string.upper(msg:get("PID-5.1.1")))
  msg:set("PID-5.2", string.upper(msg:get("PID-5.2")))
  -- OMI^O23 carries the accession in IPC-1; copy it to OBR-18 like ORM does.
  if msg:get("OBR-18") == "" and msg:get("IPC-1.1") ~= "" then
    msg:set("OBR-18", msg:get("IPC-1.1"))
  end
  msg:set("MSH-5", "JUNCTION")
  local control = msg:get("ORC-1")
  if control == "CA" or control == "DC" then
    route("cancellations")
  else
    route("archive")
  end
  maps.channel:incr("orders")
end
