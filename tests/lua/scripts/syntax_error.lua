function transform(msg)
    local x = 1
    if x then
        return x +
end
