
-- Appended to a script when a run had failures: prints the first few
-- answers that were not 2xx, with the start of their bodies.
local reported = 0
function response(status, headers, body)
   if (status < 200 or status > 299) and reported < 3 then
      reported = reported + 1
      io.write("answered ", status, ": ", body:sub(1, 300), "\n")
   end
end
