-- bench/ingest.lua - wrk script for signed GitHub push deliveries.
--
-- Environment (read once per thread):
--   BENCH_BODY   file with the request body, a JSON object
--   BENCH_SECRET the shared secret: every request's body is made unique (a
--                field "slipway_bench": GUID first in the object) and signed
--                here with OpenSSL's HMAC through LuaJIT's FFI
--   BENCH_RUN    a tag unique to this run (GUIDs never repeat across runs)
--   BENCH_ACKED  optional file: written at the end with the GUID of every 2xx
--                whose body names it (slipway answers {"delivery": GUID, ...})
--   BENCH_PATH   request path (default /hooks/github)
--
-- Every request gets a fresh X-GitHub-Delivery: RUN-THREAD-COUNTER and a body
-- of its own, so the server measured takes its new-delivery path, never the
-- duplicate one (slipway knows a replay by its event and body, not only by
-- the GUID).
-- done() prints one machine-readable line:
--   RESULT requests=N ok2xx=N non2xx=N errors=N duration_s=S rps=R p50_ms=A p90_ms=B p99_ms=C max_ms=D
local threads = {}

-- main state: number the threads; each thread sees its number as global tid
function setup(thread)
	thread:set("tid", #threads)
	table.insert(threads, thread)
end

local ffi = require("ffi")
ffi.cdef[[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *d,
		    size_t n, unsigned char *out, unsigned int *out_len);
]]
local crypto = ffi.load("crypto.so.3")
local mac = ffi.new("unsigned char[32]")
local mac_len = ffi.new("unsigned int[1]")

local function sign(secret, s)
	crypto.HMAC(crypto.EVP_sha256(), secret, #secret, s, #s, mac, mac_len)
	local hex = {}
	for i = 0, 31 do hex[i + 1] = string.format("%02x", mac[i]) end
	return "sha256=" .. table.concat(hex)
end

local body, secret, run, path
local n = 0
ok2xx = 0
non2xx = 0
acked = {}
local want_acked = os.getenv("BENCH_ACKED")

function init(args)
	local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
	body = f:read("*a")
	f:close()
	body = body:gsub("^%s*{", "", 1)
	secret = assert(os.getenv("BENCH_SECRET"), "BENCH_SECRET is not set")
	run = os.getenv("BENCH_RUN") or "run"
	path = os.getenv("BENCH_PATH") or "/hooks/github"
end

function request()
	n = n + 1
	local guid = string.format("%s-%d-%d", run, tid, n)
	local b = '{"slipway_bench":"' .. guid .. '",' .. body
	return wrk.format("POST", path, {
		["Content-Type"] = "application/json",
		["User-Agent"] = "GitHub-Hookshot/bench",
		["X-GitHub-Event"] = "push",
		["X-GitHub-Delivery"] = guid,
		["X-GitHub-Hook-ID"] = "1",
		["X-Hub-Signature-256"] = sign(secret, b),
	}, b)
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
