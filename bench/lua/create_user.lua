-- POST a user with an e-mail no other request of any run uses.
-- Arguments: a tag unique to the run.
local counter = 0

function init(args)
   tag = args[1] or tostring(os.time())
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local body = string.format('{"email":"new-%s-%d-%d@bench.example","name":"New User %d"}',
                              tag, tid, counter, counter)
   return wrk.format(nil, nil, nil, body)
end
