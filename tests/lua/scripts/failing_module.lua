local M = {}
error("module failed at load")
return M
