-- PATCH `active: false` onto SCIM users taken in turn from a file of
-- "id userName" lines, from a starting line on, so that each request
-- deactivates a user still active; the URL is the provider's /Users.
-- Arguments: that file, the starting line.
local counter = 0
local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
   .. '"Operations":[{"op":"replace","path":"active","value":false}]}'

function init(args)
   ids = {}
   for line in io.lines(args[1]) do
      table.insert(ids, line:match("^(%S+)"))
   end
   start = tonumber(args[2] or "0")
   wrk.method = "PATCH"
   wrk.headers["Content-Type"] = "application/scim+json"
end

function request()
   counter = counter + 1
   -- Two threads (tid 1 and 2) take turns.
   local id = ids[(start + counter * 2 + tid) % #ids + 1]
   return wrk.format(nil, wrk.path .. "/" .. id, nil, body)
end
