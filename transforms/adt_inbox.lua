-- ADT inbox: mark each message with the time Junction received it.
function stamp(msg)
  msg:set("ZJN-1", now("hl7"))
  msg:set("ZJN-2", "adt-inbox")
end
