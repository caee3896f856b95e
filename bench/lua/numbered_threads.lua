-- Put before each request script: gives each wrk thread a number, `tid`
-- (1 or 2, as wrk runs with -t2), so threads never build the same request.
local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

