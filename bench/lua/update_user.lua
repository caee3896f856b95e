-- PUT a new name on users taken in turn from a file of "id email" lines;
-- the URL is the users collection. Arguments: that file.
local counter = 0

function init(args)
   users = {}
   for line in io.lines(args[1]) do
      local id, email = line:match("^(%S+) (%S+)$")
      table.insert(users, {id = id, email = email})
   end
   wrk.method = "PUT"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   -- Two threads (tid 1 and 2) take turns.
   local user = users[(counter * 2 + tid) % #users + 1]
   local body = string.format('{"email":"%s","name":"Renamed %d"}', user.email, counter)
   return wrk.format(nil, wrk.path .. "/" .. user.id, nil, body)
end
