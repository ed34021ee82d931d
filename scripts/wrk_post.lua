-- wrk script for scripts/bench.py: POST a JSON body, check each answer, print one JSON line.
--
--   wrk -t1 -c32 -d8s --timeout 30s -s scripts/wrk_post.lua URL -- BODY_FILE [EXPECT]
--
-- BODY_FILE holds the request body; a 200 answer whose body lacks EXPECT counts as bad
-- (A2A reports a failed task with HTTP 200). done() prints "JSON {...}" with the request
-- count, the errors by kind and the latency percentiles in microseconds.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
  expect = args[2] or ""
  bad = 0
end

function response(status, headers, body)
  if status == 200 and expect ~= "" and not string.find(body, expect, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_bodies = 0
  for _, thread in ipairs(threads) do
    bad_bodies = bad_bodies + (thread:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"bad_body":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    bad_bodies, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
