-- line 1
local function inner(msg)
    local t = nil
    return t.field          -- line 4
end

function transform(msg)
    return inner(msg)       -- line 8
end

function uses_require(msg)
    local h = require("helpers")
    local codes = require("sub.codes")
    assert(h.greet("x") == "hello x")
    assert(codes.CT == "Computed Tomography")
    assert(require("helpers") == h)   -- cached
end
