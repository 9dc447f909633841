-- bench/ingest.lua - wrk script for signed GitHub push deliveries.
--
-- Environment (read once per thread):
--   BENCH_BODY   file with the request body (sent as is)
--   BENCH_SIG    "sha256=<hex>" of the body with the shared secret
--   BENCH_RUN    a tag unique to this run (GUIDs never repeat across runs)
--   BENCH_ACKED  optional file: written at the end with the GUID of every 2xx
--                whose body names it (slipway answers {"delivery": GUID, ...})
--   BENCH_PATH   request path (default /hooks/github)
--
-- Every request gets a fresh X-GitHub-Delivery: RUN-THREAD-COUNTER, so the
-- server measured takes its new-delivery path, never the duplicate one.
-- done() prints one machine-readable line:
--   RESULT requests=N ok2xx=N non2xx=N errors=N duration_s=S rps=R p50_ms=A p90_ms=B p99_ms=C max_ms=D
local threads = {}

-- main state: number the threads; each thread sees its number as global tid
function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

local body, sig, run, path
local n = 0
ok2xx = 0
non2xx = 0
acked = {}
local want_acked = os.getenv("BENCH_ACKED")

function init(args)
	local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
	body = f:read("*a")
	f:close()
	sig = os.getenv("BENCH_SIG")
	run = os.getenv("BENCH_RUN") or "run"
	path = os.getenv("BENCH_PATH") or "/hooks/github"
end

function request()
	n = n + 1
	return wrk.format("POST", path, {
		["Content-Type"] = "application/json",
		["User-Agent"] = "GitHub-Hookshot/bench",
		["X-GitHub-Event"] = "push",
		["X-GitHub-Delivery"] = string.format("%s-%d-%d", run, tid, n),
		["X-GitHub-Hook-ID"] = "1",
		["X-Hub-Signature-256"] = sig,
	}, body)
end

function response(status, headers, rbody)
	if status >= 200 and status < 300 then
		ok2xx = ok2xx + 1
		if want_acked then
			local g = string.match(rbody, '"delivery":%s*"([^"]+)"')
			if g then acked[#acked + 1] = g end
		end
	else
		non2xx = non2xx + 1
	end
end

-- done() runs in the main Lua state: counters and acknowledged GUIDs are
-- copied out of each thread with thread:get.
function done(summary, latency, requests)
	local ok, bad = 0, 0
	for _, t in ipairs(threads) do
		ok = ok + (t:get("ok2xx") or 0)
		bad = bad + (t:get("non2xx") or 0)
	end
	if want_acked then
		local f = assert(io.open(want_acked, "w"))
		for _, t in ipairs(threads) do
			local a = t:get("acked")
			if a and #a > 0 then f:write(table.concat(a, "\n"), "\n") end
		end
		f:close()
	end
	local e = summary.errors
	local errs = e.connect + e.read + e.write + e.timeout
	local secs = summary.duration / 1e6
	io.write(string.format(
		"RESULT requests=%d ok2xx=%d non2xx=%d errors=%d status_errors=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
		summary.requests, ok, bad, errs, e.status, secs, summary.requests / secs,
		latency:percentile(50) / 1000, latency:percentile(90) / 1000,
		latency:percentile(99) / 1000, latency.max / 1000))
end
