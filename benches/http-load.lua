-- wrk script for benches/http-load.sh: cycles through a pool of unsubscribe
-- paths (one per line in PATHS_FILE), as GET or as an RFC 8058 one-click POST.
--
--   wrk -s benches/http-load.lua http://127.0.0.1:PORT -- GET|POST PATHS_FILE

local paths = {}
local next_index = 0
local method = "GET"
local post_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local post_body = "List-Unsubscribe=One-Click"

function init(args)
  method = args[1] or "GET"
  local file = assert(io.open(args[2], "r"), "cannot open the paths file")
  for line in file:lines() do
    if #line > 0 then paths[#paths + 1] = line end
  end
  file:close()
  assert(#paths > 0, "no paths")
  -- Threads start at different places in the pool.
  next_index = (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % #paths
end

function request()
  next_index = next_index % #paths + 1
  if method == "POST" then
    return wrk.format("POST", paths[next_index], post_headers, post_body)
  end
  return wrk.format("GET", paths[next_index])
end
