-- wrk script for the lease benchmark: acquire (`POST <the URL's path>`) and release
-- (`DELETE <path>/<lease id>`) pairs. Every lease id an answer carries is released by the next
-- request the thread sends, so the run alternates acquires and releases (the last few leases of a
-- run stay held; the policy's limit is far above what a run can hold).
local pending = {}

request = function()
  local lease = table.remove(pending)
  if lease then
    return wrk.format("DELETE", wrk.path .. "/" .. lease)
  end
  return wrk.format("POST", wrk.path)
end

response = function(status, headers, body)
  local lease = body:match('"lease":"([%w_-]+)"')
  if status == 200 and lease then
    pending[#pending + 1] = lease
  end
end
