-- wrk script: each request GETs a path drawn at random from a file of paths (one per line),
-- given after `--` on wrk's command line. The requests are formatted once in init(), so the
-- client's per-request cost is the same for every server measured.
-- done() prints one line "WRKJSON {...}" that bench/qbench/wrk.py parses.
local reqs = {}

function init(args)
    local file = args[1]
    if file == nil then
        error("paths.lua: give the paths file after --")
    end
    -- Optional third argument: an Authorization header value sent with every request.
    local headers = nil
    if args[3] ~= nil and #args[3] > 0 then
        headers = { ["Authorization"] = args[3] }
    end
    for line in io.lines(file) do
        if #line > 0 then
            reqs[#reqs + 1] = wrk.format("GET", line, headers)
        end
    end
    if #reqs == 0 then
        error("paths.lua: no paths in " .. file)
    end
    local seed = tonumber(args[2]) or 42
    math.randomseed(seed)
end

function request()
    return reqs[math.random(#reqs)]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9), latency.max, latency.mean))
end
