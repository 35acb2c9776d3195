-- Bodies through scripts: compressed responses decoded for the chunk hooks
-- (gzip, deflate, br, zstd, made by the standard tools), bodies a script
-- leaves alone (filter_body = false, decode_body = false), a corrupt body
-- and a decompression bomb, and request bodies rewritten by
-- on_request_chunk in both framings, streamed or collected whole.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local socket = require("socket")

local PAGE = "tests/spec/fixtures/bodies/page.html"

-- Counts paragraphs in the text the hook sees and appends the count, so the
-- body proves the hook saw the decoded page, whole and in order.
local HTML_HOOK = [[
function on_response(tx)
  if tx.req.path:find("raw=1", 1, true) then tx.res.decode_body = false end
  if tx.req.path:find("skip=1", 1, true) then tx.res.filter_body = false end
end
function on_response_chunk(tx, chunk, eof)
  tx.ctx.seen = (tx.ctx.seen or "") .. chunk
  if eof then
    local _, n = tx.ctx.seen:gsub("<p>", "")
    return chunk .. "<!-- " .. n .. " paragraphs -->"
  end
  return chunk
end
]]

describe("bodies through scripts", function()
  local origin, proxy, dir, page

  local function file(name) return dir .. "/" .. name end

  setup(function()
    page = assert(h.read_file(PAGE))
    dir = h.tmpfile("", "keep"):match("^(.*)/[^/]*$")
    assert(h.sh("gzip -9 -c " .. PAGE .. " > " .. file("page.gz")))
    assert(h.sh("zstd -q -19 -c " .. PAGE .. " > " .. file("page.zst")))
    assert(h.sh("python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))' < "
      .. PAGE .. " > " .. file("page.zlib")))
    -- 200 MB of zeros: about 200 KB of gzip
    assert(h.sh("head -c 200000000 /dev/zero | gzip -c > " .. file("bomb.gz")))
    -- Expands late: 512 KiB of noise (which earns the ratio cap's credit)
    -- and then 40 MiB of zeros in a frame of a few KB.
    assert(h.sh("head -c 524288 /dev/urandom > " .. file("late.rnd")))
    assert(h.sh("zstd -q -1 -c " .. file("late.rnd") .. " > " .. file("late.zst")))
    assert(h.sh("head -c 41943040 /dev/zero | zstd -q -1 -c >> " .. file("late.zst")))
    local gz = h.read_file(file("page.gz"))
    h.write_file(file("corrupt.gz"), gz:sub(1, 200) .. ("\255"):rep(200) .. gz:sub(401))
    -- The page in two gzip members, as `cat a.gz b.gz` makes (RFC 1952 2.2)
    assert(h.sh("head -c 3000 " .. PAGE .. " | gzip -c > " .. file("two.gz")))
    assert(h.sh("tail -c +3001 " .. PAGE .. " | gzip -c >> " .. file("two.gz")))
  end)

  local procs = each_test.processes()
  before_each(function() origin = procs.origin() end)

  local function fetch(query)
    return assert(h.get(proxy.port, origin.url("/file?" .. query)))
  end

  for _, case in ipairs({
    { "gzip", "page.gz" }, { "deflate", "page.zlib" }, { "br", "FIXTURE_BR" }, { "zstd", "page.zst" },
  }) do
    local coding, name = case[1], case[2]
    for _, framing in ipairs({ "", "&chunked=1" }) do
      it("decodes " .. coding .. (framing ~= "" and " (chunked)" or "") .. " for the chunk hook", function()
        proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
        local path = name == "FIXTURE_BR" and (PAGE .. ".br") or file(name)
        local resp = fetch("path=" .. path .. "&encoding=" .. coding .. framing)
        assert.are.equal(200, resp.status)
        assert.is_nil(resp.headers["content-encoding"])
        assert.are.equal(page .. "<!-- 300 paragraphs -->", resp.body)
      end)
    end
  end

  it("leaves the body compressed with decode_body = false", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local resp = fetch("path=" .. file("page.gz") .. "&encoding=gzip&raw=1")
    assert.are.equal("gzip", resp.headers["content-encoding"])
    local gz = h.read_file(file("page.gz"))
    assert.are.equal(gz .. "<!-- 0 paragraphs -->", resp.body)
  end)

  it("skips the chunk hook with filter_body = false", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local resp = fetch("path=" .. file("page.gz") .. "&encoding=gzip&skip=1")
    assert.are.equal("gzip", resp.headers["content-encoding"])
    assert.are.equal(h.read_file(file("page.gz")), resp.body)
    assert.are.equal(tostring(#resp.body), resp.headers["content-length"])
  end)

  it("passes an empty body labelled with a coding as an empty body", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    h.write_file(file("empty"), "")
    for _, coding in ipairs({ "gzip", "deflate", "br", "zstd" }) do
      -- before, the decoder called it a truncated stream and cut the answer
      local resp = fetch("path=" .. file("empty") .. "&encoding=" .. coding)
      assert.are.equal(200, resp.status)
      assert.is_nil(resp.incomplete, coding)
      assert.are.equal("<!-- 0 paragraphs -->", resp.body)
    end
  end)

  it("passes a range of a compressed body on as it came, coding and range kept", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local gz = h.read_file(file("page.gz"))
    local resp = fetch("path=" .. file("page.gz") .. "&encoding=gzip&range=0-199")
    assert.are.equal(206, resp.status)
    assert.are.equal("gzip", resp.headers["content-encoding"])
    assert.are.equal("bytes 0-199/" .. #gz, resp.headers["content-range"])
    assert.are.equal(gz:sub(1, 200) .. "<!-- 0 paragraphs -->", resp.body)
  end)

  it("passes codings it does not know through untouched", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local resp = fetch("path=" .. file("page.gz") .. "&encoding=compress")
    assert.are.equal("compress", resp.headers["content-encoding"])
  end)

  -- A HEAD's fields are those the GET would get (RFC 9110 9.3.2), and a
  -- 304's those of the 200 it stands for (15.4.5): a client's cache takes
  -- them into the response it holds, decoded by the proxy. The ETag names
  -- the encoded bytes: for the decoded ones it is weak (8.8.1).
  it("answers a HEAD and a 304 with the head of the decoded GET", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local url = origin.url("/file?path=" .. file("page.gz")
      .. "&encoding=gzip&etag=v1&vary=Accept-Encoding")
    local get = assert(h.get(proxy.port, url))
    local head = assert(h.get(proxy.port, url, nil, { method = "HEAD" }))
    local revalidated = assert(h.get(proxy.port, url, { 'If-None-Match: W/"v1"' }))
    assert.are.equal(200, get.status)
    assert.are.equal(page .. "<!-- 300 paragraphs -->", get.body)
    assert.are.equal(200, head.status)
    assert.are.equal(304, revalidated.status)
    assert.are.equal('W/"v1"', get.headers["etag"])
    for _, case in ipairs({ { "HEAD", head }, { "304", revalidated } }) do
      local name, resp = case[1], case[2]
      assert.are.equal(get.headers["content-encoding"], resp.headers["content-encoding"], name)
      assert.are.equal(get.headers["content-length"], resp.headers["content-length"], name)
      assert.are.equal("Accept-Encoding", resp.headers["vary"], name)
      assert.are.equal('W/"v1"', resp.headers["etag"], name)
    end
  end)

  -- A 304 need not repeat Content-Encoding, so it may not show that the
  -- client's copy came decoded; revalidated with the weak tag that copy
  -- got, its ETag must stay weak, or the client's cache takes it strong.
  it("keeps weak the ETag of a 304 without Content-Encoding to the tag a decoded GET gave", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local url = origin.url("/file?path=" .. file("page.gz") .. "&encoding=gzip&etag=v3&bare304=1")
    local get = assert(h.get(proxy.port, url))
    assert.are.equal('W/"v3"', get.headers["etag"])
    local revalidated = assert(h.get(proxy.port, url, { 'If-None-Match: W/"v3"' }))
    assert.are.equal(304, revalidated.status)
    assert.is_nil(revalidated.headers["content-encoding"])
    assert.are.equal('W/"v3"', revalidated.headers["etag"])
    -- A client that asks with the strong tag gets it as the origin gave it.
    local strong = assert(h.get(proxy.port, url, { 'If-None-Match: "v3"' }))
    assert.are.equal(304, strong.status)
    assert.are.equal('"v3"', strong.headers["etag"])
  end)

  it("keeps the coding and length of a HEAD whose GET is not decoded", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local length = tostring(#h.read_file(file("page.gz")))
    for _, query in ipairs({ "&encoding=gzip&raw=1", "&encoding=gzip&skip=1", "&encoding=compress" }) do
      local resp = assert(h.get(proxy.port, origin.url("/file?path=" .. file("page.gz") .. query
        .. "&etag=v2"), nil, { method = "HEAD" }))
      assert.are.equal(200, resp.status)
      assert.are.equal('"v2"', resp.headers["etag"], query)
      assert.are.equal(query:match("encoding=(%w+)"), resp.headers["content-encoding"], query)
      assert.are.equal(length, resp.headers["content-length"], query)
    end
  end)

  it("keeps the coding and length of a HEAD when no script has a chunk hook", function()
    proxy = procs.proxy({ "-s", h.tmpfile("function on_response(tx) end", "head.lua") })
    local resp = assert(h.get(proxy.port, origin.url("/file?path=" .. file("page.gz") .. "&encoding=gzip"),
      nil, { method = "HEAD" }))
    assert.are.equal("gzip", resp.headers["content-encoding"])
    assert.are.equal(tostring(#h.read_file(file("page.gz"))), resp.headers["content-length"])
  end)

  it("decodes a gzip body of several members whole", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    for _, framing in ipairs({ "", "&chunked=1" }) do
      local resp = fetch("path=" .. file("two.gz") .. "&encoding=gzip" .. framing)
      assert.are.equal(200, resp.status)
      assert.is_falsy(resp.incomplete)
      assert.are.equal(page .. "<!-- 300 paragraphs -->", resp.body)
    end
  end)

  it("ends the exchange on a corrupt compressed body", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local resp = fetch("path=" .. file("corrupt.gz") .. "&encoding=gzip")
    assert.is_true(resp.incomplete)
    assert.is_truthy(h.wait_for(function()
      return proxy.log():find("corrupt compressed body", 1, true)
    end))
    assert.are.equal("hello\n<!-- 0 paragraphs -->", h.get(proxy.port, origin.url("/hello")).body)
  end)

  it("stops a decompression bomb", function()
    proxy = procs.proxy({ "-s", h.tmpfile(HTML_HOOK, "html.lua") })
    local resp = fetch("path=" .. file("bomb.gz") .. "&encoding=gzip&type=text/plain")
    assert.is_true(resp.incomplete)
    assert.is_truthy(#resp.body < 20 * 1024 * 1024)
    assert.is_truthy(h.wait_for(function()
      return proxy.log():find("expands too far", 1, true)
    end))
    assert.is_true(proxy.alive())
  end)

  describe("a body that expands late", function()
    -- 40 MiB decoded from a few KB in one read: made and handed on a
    -- bounded amount at a time (the client's pace, and a share per turn of
    -- the loop), never held whole. A small ASan quarantine keeps the peak
    -- the proxy's own (see lifecycle_spec).
    local LATE = 524288 + 41943040

    local function measured_proxy(script)
      local asan = os.getenv("ASAN_OPTIONS")
      proxy = procs.proxy({ "-s", h.tmpfile(script, "late.lua") }, { env = {
        ASAN_OPTIONS = (asan and asan ~= "" and asan .. ":" or "") .. "quarantine_size_mb=4" } })
      assert.are.equal(200, fetch("path=" .. file("page.zst") .. "&encoding=zstd").status)
      return proxy.peak_rss_kb()
    end

    it("reaches the hooks whole, in pieces, without being held at once", function()
      local before = measured_proxy([[
        function on_response_chunk(tx, chunk, eof)
          tx.ctx.n = (tx.ctx.n or 0) + #chunk
          tx.ctx.max = math.max(tx.ctx.max or 0, #chunk)
          if eof then return tx.ctx.n .. " " .. tx.ctx.max end
          return ""
        end
      ]])
      local resp = fetch("path=" .. file("late.zst") .. "&encoding=zstd")
      assert.are.equal(200, resp.status)
      assert.are.equal(LATE .. " " .. 256 * 1024, resp.body)
      local grew = proxy.peak_rss_kb() - before
      assert.is_true(grew < 16 * 1024, "the proxy's peak grew by " .. grew .. " KiB")
    end)

    it("reaches a client that reads slowly byte for byte", function()
      local before = measured_proxy("function on_response_chunk(tx, chunk, eof) end")
      local resp = fetch("path=" .. file("late.zst") .. "&encoding=zstd")
      assert.are.equal(200, resp.status)
      assert.are.equal(LATE, #resp.body)
      assert.is_true(resp.body:sub(1, 524288) == h.read_file(file("late.rnd")), "the noise")
      assert.is_nil(resp.body:find("[^%z]", 524289), "the zeros")
      local grew = proxy.peak_rss_kb() - before
      assert.is_true(grew < 16 * 1024, "the proxy's peak grew by " .. grew .. " KiB")
    end)
  end)

  describe("on_request_chunk", function()
    local UPPER = [[
      function on_request(tx)
        if tx.req.headers["X-Whole"] then tx.req.buffer_body = true end
        if tx.req.headers["X-Skip"] then tx.req.filter_body = false end
      end
      function on_request_chunk(tx, chunk, eof)
        return chunk:upper() .. (eof and "!" or "")
      end
    ]]

    local function send(body, headers)
      local list = { "Host: " .. origin.authority }
      for _, x in ipairs(headers) do list[#list + 1] = x end
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("POST", origin.url("/echo"), list, body)))
      local resp = assert(h.read_response(s))
      s:close()
      return resp, resp.body:match("\r\n\r\n(.*)$"), resp.body:match("^(.-\r\n\r\n)")
    end

    before_each(function()
      proxy = procs.proxy({ "-s", h.tmpfile(UPPER, "upper.lua"), "--max-body-buffer", "1" })
    end)

    it("rewrites a Content-Length body, sent on chunked", function()
      local _, body, head = send("hello world", { "Content-Length: 11" })
      assert.is_truthy(head:lower():find("transfer-encoding: chunked", 1, true))
      assert.are.equal("HELLO WORLD!", h.decode_chunked(body))
    end)

    it("rewrites a chunked body", function()
      local _, body = send("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", { "Transfer-Encoding: chunked" })
      assert.are.equal("HELLO WORLD!", h.decode_chunked(body))
    end)

    -- The trailers of a chunked body were dropped when the hook's last
    -- call waited (proxy.sleep), on the last piece or on the eof call:
    -- they pointed into input consumed before the hook resumed.
    for _, at in ipairs({ "piece", "eof" }) do
      it("keeps a chunked body's trailers when the hook waits at the " .. at, function()
        local waiting = string.format([[
          function on_request_chunk(tx, chunk, eof)
            if %s then proxy.sleep(0.01) end
            return chunk:upper() .. (eof and "!" or "")
          end
        ]], at == "eof" and "eof" or "#chunk > 0")
        proxy = procs.proxy({ "-s", h.tmpfile(waiting, "waiting.lua") })
        local _, body = send("5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\nX-Other: 2\r\n\r\n",
                             { "Transfer-Encoding: chunked" })
        local decoded, trailers = h.decode_chunked(body)
        assert.are.equal("HELLO WORLD!", decoded)
        assert.are.equal("abc", trailers["x-sum"], body)
        assert.are.equal("2", trailers["x-other"], body)
      end)
    end

    for _, framing in ipairs({ "length", "chunked" }) do
      it("collects a " .. framing .. " body whole with buffer_body and sends a length", function()
        local body, hdr = "hello world", "Content-Length: 11"
        if framing == "chunked" then
          body, hdr = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "Transfer-Encoding: chunked"
        end
        local _, got, head = send(body, { hdr, "X-Whole: 1" })
        assert.is_truthy(head:find("Content-Length: 12\r\n", 1, true))
        assert.are.equal("HELLO WORLD!", got)
      end)
    end

    -- The head goes up only once the body is whole, so the connection
    -- stays silent meanwhile; an upstream that gives it up (its idle or
    -- keep-alive timeout, often seconds) never got the request, which then
    -- goes whole on a fresh connection, whatever its method.
    it("sends a collected body on a fresh connection when the upstream gave up the first", function()
      local server, port, target = h.raw_listener()
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, "POST http://" .. target .. "/ HTTP/1.1\r\nHost: " .. target
        .. "\r\nX-Whole: 1\r\nContent-Length: 11\r\n\r\nhello"))
      local first = assert(server:accept())
      first:send("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      first:close()
      assert(h.send(s, " world"))
      local up, err = server:accept()
      server:close()
      assert(up, "no second connection: " .. tostring(err))
      up:settimeout(5)
      local head = {}
      repeat
        local line = assert(up:receive("*l"))
        head[#head + 1] = line
      until line == ""
      local length = tonumber(table.concat(head, "\n"):match("\n[Cc]ontent%-[Ll]ength: (%d+)"))
      assert.are.equal(12, length, table.concat(head, "\n"))
      assert.are.equal("HELLO WORLD!", assert(up:receive(length)))
      assert(up:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
      local resp = assert(h.read_response(s))
      up:close()
      s:close()
      assert.are.equal(200, resp.status, resp.raw_head)
      assert.are.equal("ok", resp.body)
    end)

    -- Whether the proxy has read every byte sent on <sock>: nothing left
    -- unacknowledged on the client's side nor unread on the proxy's.
    local function all_read(sock)
      local _, cport = sock:getsockname()
      local hex = function(n) return string.format("%04X", n) end
      local sent, unread
      for line in (h.read_file("/proc/net/tcp") or ""):gmatch("[^\n]+") do
        local lp, rp, tx, rx = line:match("^%s*%d+: %x+:(%x+) %x+:(%x+) %x+ (%x+):(%x+)")
        if lp == hex(cport) and rp == hex(proxy.port) then sent = tonumber(tx, 16) end
        if lp == hex(proxy.port) and rp == hex(cport) then unread = tonumber(rx, 16) end
      end
      return sent == 0 and unread == 0
    end

    -- A collected body and its rewrite take twice its size; under a cap
    -- that holds that, every upload must pass. The bodies of the uploads
    -- before stayed as garbage the collector had not reached, and
    -- string.upper's buffer, which grows without a collection, failed
    -- every other upload with 500.
    it("rewrites one collected body after another under a --lua-memory that holds two", function()
      local UPPER_WHOLE = [[
        function on_request(tx) tx.req.buffer_body = true end
        function on_request_chunk(tx, chunk, eof) return chunk:upper() end
      ]]
      proxy = procs.proxy({ "-s", h.tmpfile(UPPER_WHOLE, "upper_whole.lua"),
                            "--max-body-buffer", "3", "--lua-memory", "8" })
      local body = ("abcdefgh"):rep(256 * 1024) -- 2 MiB
      for i = 1, 6 do
        local resp, got = send(body, { "Content-Length: " .. #body })
        assert.are.equal(200, resp.status, "upload " .. i .. ": " .. proxy.log())
        assert.is_true(got == body:upper(), "upload " .. i .. " arrived changed otherwise")
      end
    end)

    -- Each collected body is bounded by --max-body-buffer; so are all the
    -- bodies collected at once, by --lua-memory, or enough clients each
    -- sending a large one slowly would make the proxy hold them all.
    it("answers 503 to a body that would take those collected at once past --lua-memory", function()
      local COLLECT = [[
        function on_request(tx) tx.req.buffer_body = true end
        function on_request_chunk(tx, chunk, eof) end
      ]]
      proxy = procs.proxy({ "-s", h.tmpfile(COLLECT, "collect.lua"), "--max-body-buffer", "1",
                            "--lua-memory", "4" })
      local size, part = 1024 * 1024, 896 * 1024
      local function start_upload()
        local s = assert(h.connect(proxy.port))
        assert(h.send(s, h.request("POST", origin.url("/echo"),
          { "Host: " .. origin.authority, "X-Whole: 1", "Content-Length: " .. size })
          .. ("a"):rep(part)))
        assert.is_truthy(h.wait_for(function() return all_read(s) end), "the proxy read it all")
        return s
      end
      local uploads = {}
      for i = 1, 4 do uploads[i] = start_upload() end
      -- a fifth would take them past 4 MiB
      local c = assert(h.connect(proxy.port))
      assert(h.send(c, h.request("POST", origin.url("/echo"),
        { "Host: " .. origin.authority, "X-Whole: 1", "Content-Length: " .. size })
        .. ("c"):rep(part)))
      local refused = assert(h.read_response(c))
      c:close()
      assert(h.check_error_response(refused, 503, "Service Unavailable"))
      -- the others still go through whole
      for _, s in ipairs(uploads) do
        assert(h.send(s, ("z"):rep(size - part)))
        local resp = assert(h.read_response(s))
        s:close()
        assert.are.equal(200, resp.status)
        assert.are.equal(("a"):rep(part) .. ("z"):rep(size - part),
          resp.body:match("\r\n\r\n(.*)$"))
      end
    end)

    it("leaves a body alone with filter_body = false", function()
      local _, got, head = send("hello world", { "Content-Length: 11", "X-Skip: 1" })
      assert.is_truthy(head:find("Content-Length: 11\r\n", 1, true))
      assert.are.equal("hello world", got)
    end)

    it("answers 413 past --max-body-buffer", function()
      local big = ("x"):rep(1024 * 1024 + 1)
      local resp = send(big, { "Content-Length: " .. #big, "X-Whole: 1" })
      assert.are.equal(413, resp.status)
    end)

    -- Its length already says so: the client is not asked for it with a
    -- 100 Continue, and none of it is read first.
    it("answers 413 at once to a Content-Length past --max-body-buffer", function()
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("POST", origin.url("/echo"), { "Host: " .. origin.authority,
        "X-Whole: 1", "Expect: 100-continue", "Content-Length: " .. (2 * 1024 * 1024) })))
      local resp = assert(h.read_response(s))
      assert.are.equal(413, resp.status, resp.raw_head)
      assert.is_true(h.is_closed(s, 3))
      s:close()
      assert.are.equal(0, #origin.requests())
    end)

    -- Decided before the upstream is contacted: a server that cannot be
    -- reached does not turn the 413 into a 502.
    it("answers 413 to such a length before connecting anywhere", function()
      local s = assert(h.connect(proxy.port))
      local authority = "127.0.0.1:" .. h.closed_port()
      assert(h.send(s, h.request("POST", "http://" .. authority .. "/echo", { "Host: " .. authority,
        "X-Whole: 1", "Content-Length: " .. (2 * 1024 * 1024) })))
      local resp = assert(h.read_response(s))
      s:close()
      assert.are.equal(413, resp.status, resp.raw_head)
    end)

    it("keeps Expect: 100-continue working, streamed and collected", function()
      local data = h.tmpfile(("abc"):rep(1000), "body.txt")
      for _, extra in ipairs({ {}, { "-H", "X-Whole: 1" } }) do
        local args = { "-x", "127.0.0.1:" .. proxy.port, "-H", "Expect: 100-continue",
                       "--data-binary", "@" .. data, origin.url("/continue") }
        for i, a in ipairs(extra) do table.insert(args, i, a) end
        local out = h.curl(args)
        assert.are.equal(("ABC"):rep(1000) .. "!", out)
      end
    end)
  end)
end)
