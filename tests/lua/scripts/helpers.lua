-- A module for require() tests (tests/lua/scripts/helpers.lua).
local M = {}
function M.greet(name) return "hello " .. name end
M.loaded_count = (M.loaded_count or 0) + 1
return M
