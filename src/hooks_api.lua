-- hooks_api.lua - the Lua half of the hook API: tx, headers and `proxy`.
--
-- Built into the binary and run once in every Lua state, before the user's
-- scripts. It defines the objects scripts see (tx, tx.req, tx.res, header
-- lists) and returns a table of internal functions that the hooks C files call to
-- move data between the relay and Lua. Scripts only ever hold copies: no
-- object here refers to memory of the C side.
--
-- The C side passes one argument: a table of native functions: log(msg),
-- now(), phase() (the hook running now), responded() (tx:respond was
-- called), and the version string.

local native = ...

local type, tostring, error, pairs, ipairs, select, next = type, tostring, error, pairs, ipairs, select, next
local setmetatable, getmetatable, rawget, rawset, rawlen = setmetatable, getmetatable, rawget, rawset, rawlen
local tointeger, lower, concat, byte = math.tointeger, string.lower, table.concat, string.byte
local HUGE, MAXINTEGER = math.huge, math.maxinteger

local SLEEP = "luaproxy.sleep" -- what proxy.sleep yields; hooks_run.c looks for it

-- tx.req and tx.res are sides (hooks_tx.c): tables that hold the header
-- list and the request or status line, and hand every field out through
-- their __index. data_of(side) is the data table hooks_api works on
-- ({ method =, ..., headers = }, or { status =, reason =, headers = }),
-- made from the side the first time it is needed; nil for nil.
local data_of = native.data_of
-- The keys (light userdata) under which a tx keeps its sides for the
-- proxy: tx.req and tx.res are what a script reads, and may assign to.
-- pairs(tx) skips them (Tx.__pairs); only next() comes across them.
local REQ_KEY, RES_KEY = native.tx_req_key, native.tx_res_key

---------------------------------------------------------------------------
-- Validation: a script can never make the proxy send a split message.

-- Names already found valid: scripts use the same few names on every
-- request, and a table lookup costs far less than the pattern. Bounded:
-- emptied when full.
local valid_names, valid_count = {}, 0

local function check_name(name, level)
  if valid_names[name] then return name end
  if type(name) ~= "string" or not name:find("^[%w!#$%%&'*+%-.^_`|~]+$") then
    error("invalid header name " .. tostring(name), level + 1)
  end
  if valid_count >= 256 then valid_names, valid_count = {}, 0 end
  valid_names[name] = true
  valid_count = valid_count + 1
  return name
end

-- A number goes out as native.number_text writes it (3.0 as "3", 2^53 in
-- all its digits); NaN and the infinities have no text to send.
local number_text = native.number_text

local function check_value(value, level)
  if type(value) == "number" then
    local text = number_text(value)
    if not text then
      error("a header value must be a finite number, got " .. tostring(value), level + 1)
    end
    value = text
  end
  if type(value) ~= "string" then
    error("a header value must be a string, got " .. type(value), level + 1)
  end
  if value:find("[%z\r\n]") then
    error("a header value must not contain CR, LF or NUL", level + 1)
  end
  -- Trimmed only when there is something to trim: most values have no
  -- space or tab at either end, and gsub makes a new string each time.
  local first, last = byte(value, 1), byte(value, -1)
  if first == 32 or first == 9 or last == 32 or last == 9 then
    value = value:gsub("^[ \t]+", ""):gsub("[ \t]+$", "")
  end
  return value
end

---------------------------------------------------------------------------
-- Header lists: fields in wire order, looked up case-insensitively.
-- Stored flat and raw, name at 2i-1 and value at 2i, which is also the
-- layout C hands over and reads back: no table per field, no copying.
-- Integer keys never collide with header names (strings).

local header_methods = {}
local Headers = {}

-- Set (as a key no script can name) on a header list and on a request that
-- a script changed: one left untouched is not read back into the relay,
-- which then forwards what it parsed. (A light userdata: hooks_readback.c looks
-- for it too.)
local CHANGED = native.changed_key

-- pairs() over a request's or response's data, without the CHANGED mark.
local function pairs_unmarked(d)
  return function(_, k)
    local nk, nv = next(d, k)
    if nk == CHANGED then nk, nv = next(d, nk) end
    return nk, nv
  end, d, nil
end

local function new_headers()
  return setmetatable({}, Headers)
end

-- get, values, set, add and remove, and the list's __index, __newindex
-- and __len, are C functions (hooks_headers.c) working on this table in
-- place: a header lookup or change runs no Lua code.
-- count(h, name) is not a method: it is how request_out counts Host fields.
-- The lists C hands over start as views that hold no field until one is
-- read: fill(h) makes h a plain list (the flat layout below) before it is
-- read raw.
-- list_changed(h) says whether h was changed through the methods (a
-- view has no mark: it is changed when it holds an edit).
local count_fields, fill, list_changed
header_methods.get, header_methods.values, header_methods.set, header_methods.add,
  header_methods.remove, Headers.__index, Headers.__newindex, count_fields, Headers.__len,
  fill, list_changed = native.header_functions(header_methods)
Headers.__pairs = function(self)
  fill(self)
  local i = -1
  return function()
    i = i + 2
    local name = rawget(self, i)
    if name then return name, rawget(self, i + 1) end
  end, self, nil
end

-- The flat list C built becomes the header object itself.
local function headers_from_list(list)
  return setmetatable(list, Headers)
end

local function copy_headers(h)
  fill(h)
  local c = new_headers()
  for i = 1, rawlen(h) do rawset(c, i, rawget(h, i)) end
  return c
end

---------------------------------------------------------------------------
-- The request: url, host, port and path stay consistent with each other,
-- and the Host header follows them.

local function authority(d)
  local host = d.host:find(":", 1, true) and ("[" .. d.host .. "]") or d.host
  if d.port ~= (d.scheme == "https" and 443 or 80) then host = host .. ":" .. d.port end
  return host
end

local function check_host(host, level)
  if type(host) ~= "string" or host == "" or #host > 255 then
    error("host must be a non-empty string", level + 1)
  end
  host = host:match("^%[(.*)%]$") or host
  if not (host:find("^[%w._~-]+$") or host:find("^[%x:.]+$")) then
    error("invalid host " .. host, level + 1)
  end
  return host
end

local function check_port(port, level)
  local p = tointeger(port) or tointeger(tonumber(port))
  if not p or p < 1 or p > 65535 then
    error("port must be an integer from 1 to 65535", level + 1)
  end
  return p
end

-- What a client's target may hold (url.c): visible ASCII, and no "#",
-- since a fragment is never sent.
local function check_path(path, level)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" or path:find("[^!-~]")
      or path:find("#", 1, true) then
    error("path must start with / and hold only visible ASCII (no space, control or non-ASCII "
      .. "byte, no #)", level + 1)
  end
  return path
end

-- The URL as scripts see it: absolute for http and https (inside an
-- intercepted tunnel), "host:port" for CONNECT.
local function url_of(d)
  if d.scheme == "" then
    local host = d.host:find(":", 1, true) and ("[" .. d.host .. "]") or d.host
    return host .. ":" .. d.port
  end
  return d.scheme .. "://" .. authority(d) .. d.path
end

-- d.url is made when first read (few scripts look at it): nil means "to
-- be made from scheme, host, port and path".
local function sync(d)
  d.url = nil
  header_methods.set(d.headers, "Host", authority(d))
end

local function parse_url(url, level)
  if type(url) ~= "string" then error("url must be a string", level + 1) end
  local scheme, auth, rest = url:match("^(%a[%w+.-]*)://([^/?#]+)(.*)$")
  if not scheme then error("url must be absolute: http://host[:port]/path", level + 1) end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    error("only http:// and https:// URLs can be forwarded", level + 1)
  end
  local host, port = auth:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = auth:match("^([^:@]+):?(%d*)$") end
  if not host then error("invalid authority in url " .. url, level + 1) end
  if rest == "" then rest = "/" elseif rest:sub(1, 1) == "?" then rest = "/" .. rest end
  local default = scheme == "https" and 443 or 80
  return scheme, check_host(host, level + 1),
    port == "" and default or check_port(port, level + 1), check_path(rest, level + 1)
end

-- Methods a server may recognise whatever their case. A script must spell
-- them in upper case: "head" might be answered as a HEAD (no body) by one
-- server and refused by another, and the proxy frames the answer by the
-- method it sent.
local KNOWN_METHODS = { GET = true, HEAD = true, POST = true, PUT = true, DELETE = true,
                        CONNECT = true, OPTIONS = true, TRACE = true, PATCH = true }

-- A method a script gives (tx.req.method, proxy.http's): a token, and a
-- known one in upper case. Errors say <who> and point <level> up.
local function check_method(v, level, who)
  if type(v) ~= "string" or not v:find("^[%w!#$%%&'*+%-.^_`|~]+$") then
    error(who .. "method must be a token such as GET", level + 1)
  end
  local upper = v:upper()
  if KNOWN_METHODS[upper] and v ~= upper then
    error(who .. "methods are case-sensitive: write " .. upper, level + 1)
  end
  return upper
end

local function check_flag(name, v)
  if type(v) ~= "boolean" then error(name .. " must be true or false", 4) end
  return v
end

-- A CONNECT names a tunnel's far end (host and port), not a resource: a
-- URL or a path set on one would be dropped without a word, or turn the
-- tunnel into a request.
local function no_path_in_connect(d, what)
  if d.scheme == "" then
    error("tx.req." .. what .. " cannot be set for a CONNECT (it has a host and a port, "
      .. "no path)", 4)
  end
end

local request_setters = {
  method = function(d, v)
    local upper = check_method(v, 3, "")
    -- CONNECT opens a tunnel to host:port and has no path: a request
    -- cannot become one, nor a tunnel request anything else.
    if d.scheme == "" and v ~= "CONNECT" then
      error("the method of a CONNECT request cannot be changed", 3)
    end
    if d.scheme ~= "" and upper == "CONNECT" then
      error("a request cannot be turned into CONNECT", 3)
    end
    d.method = v
  end,
  url = function(d, v)
    no_path_in_connect(d, "url")
    d.scheme, d.host, d.port, d.path = parse_url(v, 3)
    sync(d)
  end,
  host = function(d, v) d.host = check_host(v, 3); sync(d) end,
  port = function(d, v) d.port = check_port(v, 3); sync(d) end,
  path = function(d, v)
    no_path_in_connect(d, "path")
    d.path = check_path(v, 3)
    sync(d)
  end,
  -- false: on_request_chunk does not see this body (it goes through as is)
  filter_body = function(d, v) d.filter_body = check_flag("tx.req.filter_body", v) end,
  -- true: on_request_chunk gets the whole body at once, sent on with a length
  buffer_body = function(d, v) d.buffer_body = check_flag("tx.req.buffer_body", v) end,
}

-- The side's data table, for a metamethod of the side <t>.
local function side_data(t, what)
  if type(t) ~= "table" then error("not " .. what .. " of a tx", 3) end
  return data_of(t)
end

-- The __newindex of tx.req and tx.res: <setters> checks and stores each
-- field a script may set; <what> names the object in the error. A side
-- holds no field under a name, so every set comes here.
local function newindex_of(setters, what)
  return function(t, key, value)
    local setter = setters[key]
    if not setter then error(what .. "." .. tostring(key) .. " cannot be set", 2) end
    local d = side_data(t, what)
    d[CHANGED] = true
    setter(d, value)
  end
end

-- __index is a C function (hooks_tx.c): the data table's field, or,
-- before there is one, the list or the line's field; d.url made from
-- url_of(d) when first read.
local Request = {
  __newindex = newindex_of(request_setters, "tx.req"),
  __pairs = function(t)
    local d = side_data(t, "tx.req")
    if d.url == nil then d.url = url_of(d) end
    return pairs_unmarked(d)
  end,
}

---------------------------------------------------------------------------
-- The response: status, reason and headers.

local response_setters = {
  status = function(d, v)
    local s = tointeger(v)
    if not s or s < 200 or s > 599 then error("status must be an integer from 200 to 599", 3) end
    d.status = s
  end,
  reason = function(d, v)
    -- RFC 9112 4: HTAB, SP, visible and non-ASCII bytes; no other control.
    if type(v) ~= "string" or v:find("[%z\1-\8\10-\31\127]") then
      error("reason must be a string without control characters", 3)
    end
    if #v > native.reason_max then
      error("reason must be at most " .. native.reason_max .. " bytes", 3)
    end
    d.reason = v
    d.reason_set = true -- else the reason follows a changed status
  end,
  -- false: on_response_chunk does not see this body (zero-copy path)
  filter_body = function(d, v) d.filter_body = check_flag("tx.res.filter_body", v) end,
  -- false: the chunk hooks get the body still compressed
  decode_body = function(d, v) d.decode_body = check_flag("tx.res.decode_body", v) end,
}

local Response = {
  __newindex = newindex_of(response_setters, "tx.res"),
  __pairs = function(t) return pairs_unmarked(side_data(t, "tx.res")) end,
}

-- Reading a field of tx.req or tx.res runs no Lua code.
Request.__index, Response.__index = native.data_index(url_of)

-- A side made here, with its data table (hooks_tx.c's layout: the list,
-- then the data table; no line block).
local function new_response(d)
  return setmetatable({ d.headers, d }, Response)
end

---------------------------------------------------------------------------
-- The transaction.

-- tx.req is made when a script first reads it (most hooks never do, or
-- only after a cheap check): the exchange's request is fetched then from
-- the exchange being served, if the tx is that exchange's (C knows it by
-- identity, so a script that sets tx.id does not lose its request).

-- native.make_request(tx) (hooks_tx.c) makes tx.req, a side over the
-- exchange's request, and returns it; or nothing for a tx kept past its
-- exchange, never read in it. req_data(tx) is tx.req's data table, made
-- if need be; res_data(tx) tx.res's, if tx.res was made. Both as the proxy
-- keeps them, whatever a script assigned to tx.req or tx.res.
local function req_data(tx)
  local side = rawget(tx, REQ_KEY)
  if side == nil then side = native.make_request(tx) end
  return data_of(side, true)
end

local function res_data(tx)
  return data_of(rawget(tx, RES_KEY), false)
end

-- Where a tx holds what tx.client is made from (hooks_tx.c, TX_SLOT_*).
local CLIENT_IP_SLOT, CLIENT_PORT_SLOT = native.tx_client_ip_slot, native.tx_client_port_slot

local tx_methods = {}
-- tx's __index is a C function (hooks_tx.c): a method of tx_methods, or
-- tx.req (made by native.make_request, on the path of most hooks), or
-- else what tx_index_rest returns.
local function tx_index_rest(t, key)
    -- Made on first use: most transactions never look at them.
    if key == "ctx" then
      local ctx = {}
      rawset(t, "ctx", ctx)
      return ctx
    elseif key == "client" then
      local client = { ip = rawget(t, CLIENT_IP_SLOT), port = rawget(t, CLIENT_PORT_SLOT) }
      rawset(t, "client", client)
      return client
    elseif key == "upstream" then
      local d = req_data(t)
      local upstream = { host = d.host, port = d.port, tls = d.scheme == "https",
                         proxy = rawget(t, "_parent") }
      rawset(t, "upstream", upstream)
      return upstream
    end
    return nil
end
-- pairs(tx) walks what a script may use: not the proxy's keys of its
-- sides (light userdata, which a script could not even print).
local function next_named(t, k)
  local v
  repeat k, v = next(t, k) until k ~= REQ_KEY and k ~= RES_KEY
  return k, v
end
local Tx = { __index = native.tx_index(tx_methods, tx_index_rest),
             __pairs = function(t) return next_named, t, nil end }

-- Phases in which tx:respond is allowed; native.phase() names the phase
-- running now.
local can_respond = { on_request = true, before_connect = true, on_response = true }

function tx_methods.respond(self, status, body, headers)
  if not can_respond[native.phase()] then
    error("tx:respond can only be used in on_request, before_connect or on_response", 2)
  end
  local s = tointeger(status)
  if not s or s < 200 or s > 599 then error("respond: status must be an integer from 200 to 599", 2) end
  -- A 2xx to a CONNECT says the tunnel is open (RFC 9110 9.3.6): the
  -- client would send its tunnel's bytes, and the proxy read them as
  -- requests. Only the proxy opens a tunnel.
  if s < 300 and native.is_connect(self) then
    error("respond: a CONNECT cannot be answered with " .. s
      .. " (a 2xx opens the tunnel): answer it with an error status", 2)
  end
  if body ~= nil and type(body) ~= "string" then error("respond: body must be a string", 2) end
  local h = new_headers()
  if headers ~= nil then
    if type(headers) ~= "table" then error("respond: headers must be a table", 2) end
    for k, v in pairs(headers) do
      if type(k) == "number" and type(v) == "table" then
        header_methods.add(h, v[1], v[2])
      else
        header_methods.add(h, k, v)
      end
    end
  end
  -- A tx kept from an earlier exchange: an error here, in the hook that
  -- called it, rather than an answer the exchange being served never made.
  if not native.responded(self) then
    error("tx:respond on a tx whose exchange is over (a tx kept for later cannot answer)", 2)
  end
  rawset(self, "_respond", { status = s, body = body or "", headers = h })
end

-- For a CONNECT in on_request: decrypt this tunnel (true) or pass it
-- through (false), whatever --intercept and --no-intercept say.
function tx_methods.intercept(self, on)
  if native.phase() ~= "on_request" or req_data(self).method ~= "CONNECT" then
    error("tx:intercept can only be used in on_request for a CONNECT", 2)
  end
  if type(on) ~= "boolean" then error("tx:intercept needs true or false", 2) end
  rawset(self, "_intercept", on)
end

---------------------------------------------------------------------------
-- The global `proxy` table.

local function log(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  native.log(concat(parts, " "))
end

-- proxy.shared: one store for every worker (shared memory or Redis, the
-- C side chooses); the same calls either way. A key or value of the wrong
-- type is the script's mistake, an error; one the store cannot take (a key
-- past 256 bytes, often made from what a client sent) is a failure the
-- C side answers with nil and a reason, like any other.
local function check_key(key)
  if type(key) ~= "string" then
    error("proxy.shared: a key is a string, got " .. type(key), 3)
  end
end

local function check_ttl(ttl)
  if ttl ~= nil and (type(ttl) ~= "number" or ttl < 0 or ttl ~= ttl) then
    error("proxy.shared: ttl is a number of seconds >= 0", 3)
  end
end

local shared = {
  get = function(key)
    check_key(key)
    return native.shared("get", key)
  end,
  set = function(key, value, ttl)
    check_key(key)
    local t = type(value)
    if t ~= "string" and t ~= "number" and t ~= "boolean" then
      error("proxy.shared.set: the value must be a string, number or boolean", 2)
    end
    check_ttl(ttl)
    return native.shared("set", key, value, ttl)
  end,
  incr = function(key, by, ttl)
    check_key(key)
    if by == nil then by = 1 end
    if type(by) ~= "number" then error("proxy.shared.incr: the step must be a number", 2) end
    check_ttl(ttl)
    return native.shared("incr", key, by, ttl)
  end,
  delete = function(key)
    check_key(key)
    return native.shared("delete", key)
  end,
}

-- proxy.json: encode, decode, null and array_mt, all in C (hooks_json.c).
local json = native.json

-- proxy.http{ url =, method =, headers =, body =, timeout =, max_body =,
-- proxy = }: the hook waits (other clients are served meanwhile) and gets
-- res = { status =, headers = { lower-case name = value }, body = } or nil
-- and a reason.
local function http(opts)
  if type(opts) ~= "table" then error("proxy.http takes a table: proxy.http{ url = ... }", 2) end
  local url = opts.url
  if type(url) ~= "string" then error("proxy.http: url must be a string", 2) end
  local method = opts.method or (opts.body and "POST" or "GET")
  -- The same rule as tx.req.method; and no CONNECT: a call out asks for
  -- an answer, it does not open a tunnel.
  if check_method(method, 2, "proxy.http: ") == "CONNECT" then
    error("proxy.http: CONNECT opens a tunnel, which a call out cannot use", 2)
  end
  local list = {}
  if opts.headers ~= nil then
    if type(opts.headers) ~= "table" then error("proxy.http: headers must be a table", 2) end
    for name, value in pairs(opts.headers) do
      check_name(name, 2)
      local l = lower(name)
      if l == "host" or l == "content-length" or l == "transfer-encoding" or l == "connection" then
        error("proxy.http: the " .. name .. " field is the proxy's to set", 2)
      end
      -- Which parent it would go to is the proxy's choice (--upstream,
      -- --upstream-bypass, opts.proxy), and a tunnel would carry it to the
      -- origin: the credentials go in the parent's URL instead.
      if l == "proxy-authorization" then
        error("proxy.http: credentials for a parent proxy go in its URL: "
          .. "proxy = \"http://user:password@host:port\"", 2)
      end
      list[#list + 1] = name
      list[#list + 1] = check_value(value, 2)
    end
  end
  if opts.body ~= nil and type(opts.body) ~= "string" then
    error("proxy.http: body must be a string", 2)
  end
  local timeout = opts.timeout or 10
  if type(timeout) ~= "number" or timeout <= 0 or timeout ~= timeout then
    error("proxy.http: timeout is a number of seconds > 0", 2)
  end
  local max_body = opts.max_body or 1048576
  if max_body == HUGE then max_body = MAXINTEGER end -- no more than --lua-memory
  if tointeger(max_body) == nil or max_body < 0 then
    error("proxy.http: max_body is a number of bytes", 2)
  end
  -- nil: through --upstream's parent unless the host bypasses it; false:
  -- directly; a URL: through that parent.
  local via = opts.proxy
  if via ~= nil and via ~= false and type(via) ~= "string" then
    error("proxy.http: proxy is a parent proxy's URL (http://[user:password@]host:port), "
      .. "or false to go directly", 2)
  end
  return native.http(url, method, list, opts.body, timeout, tointeger(max_body), via)
end

proxy = {
  version = native.version,
  http = http,
  shared = shared,
  json = json,
  base64 = native.base64,
  sha256 = native.sha256,
  hmac_sha256 = native.hmac_sha256,
  canonical_host = native.canonical_host,
  ip_prefix = native.ip_prefix,
  log = log,
  now = native.now,
  sleep = function(seconds)
    if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
      error("proxy.sleep needs a number of seconds >= 0", 2)
    end
    -- Inside a coroutine of the script, its resume would take the yield
    -- (and the marker) for its own, and nothing would wait.
    if not native.can_wait() then
      error("proxy.sleep cannot wait here (not inside a hook, or inside a coroutine of the "
        .. "script)", 2)
    end
    return coroutine.yield(SLEEP, seconds)
  end,
}

-- print writes to the log as proxy.log does (its arguments separated by
-- tabs, as Lua's own print separates them), not to standard output: that
-- may be the access log (--access-log -), which programs read and which a
-- script's line would corrupt, and a write to it can block the loop.
print = function(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  native.log(concat(parts, "\t"))
end

---------------------------------------------------------------------------
-- What the hooks C files call.

local api = { SLEEP = SLEEP }

-- What C needs to make a tx.req (native.make_request) and, before
-- on_response, a tx.res (as api.set_response does).
api.Headers, api.Request, api.Response = Headers, Request, Response

-- A tx is made in C (hooks_tx.c) as
--   setmetatable({ id, client_ip, client_port }, Tx)
-- (tx.id is read from slot 1 by its __index; tx.req and tx.res go under
-- REQ_KEY and RES_KEY, and under their names, when made)
-- with this:
api.Tx = Tx

-- Before before_connect: the upstream starts as the (possibly rewritten) target.
function api.begin_connect(tx, parent)
  local d = req_data(tx)
  rawset(tx, "upstream", { host = d.host, port = d.port, tls = d.scheme == "https", proxy = parent })
end

-- What goes upstream. Exactly one Host (RFC 9112 3.2): servers disagree
-- on which of two would win, so a second one is a script error; a removed
-- one comes back from the target.
-- nil when no script changed the request: the relay keeps what it has.
function api.request_out(tx)
  local d = data_of(rawget(tx, REQ_KEY), true)
  if d == nil or not d[CHANGED] and not list_changed(d.headers) and rawget(tx, "_intercept") == nil then
    return nil
  end
  local hosts = count_fields(d.headers, "Host")
  if hosts > 1 then
    error("a request carries exactly one Host field: use tx.req.headers:set(\"Host\", ...), "
      .. "not add", 2)
  end
  if hosts == 0 and d.scheme ~= "" then header_methods.set(d.headers, "Host", authority(d)) end
  return d.method, d.path, d.host, d.port, d.headers, d.scheme, rawget(tx, "_intercept"),
    d.filter_body == false, d.buffer_body == true
end

function api.upstream_out(tx)
  local u = tx.upstream
  if type(u) ~= "table" then error("tx.upstream must be a table") end
  if u.tls ~= nil and type(u.tls) ~= "boolean" then
    error("tx.upstream.tls must be true or false")
  end
  local parent = u.proxy
  if parent ~= nil and type(parent) ~= "string" then
    error("tx.upstream.proxy must be a URL string or nil", 2)
  end
  return check_host(u.host, 2), check_port(u.port, 2), u.tls, parent
end

-- For on_done after an exchange that had no response hooks: a side with
-- its data table made at once (hooks_tx.c makes the response's side for
-- on_response in C, over a view of the head, with no data table yet).
function api.set_response(tx, status, reason, fields)
  local d = { status = status, reason = reason, headers = headers_from_list(fields) }
  local side = new_response(d)
  rawset(tx, RES_KEY, side)
  rawset(tx, "res", side)
end

-- nil when no script changed the response (see request_out).
function api.response_out(tx)
  local d = res_data(tx)
  if d == nil or not d[CHANGED] and not list_changed(d.headers) then return nil end
  return d.status, d.reason, d.headers, d.reason_set, d.filter_body == false, d.decode_body == false
end

function api.respond_out(tx)
  local r = rawget(tx, "_respond")
  if not r then return nil end
  return r.status, r.body, r.headers
end

function api.finish(tx, status, err, bytes_sent, bytes_received, duration)
  rawset(tx, "status", status)
  rawset(tx, "error", err)
  rawset(tx, "bytes_sent", bytes_sent)
  rawset(tx, "bytes_received", bytes_received)
  rawset(tx, "duration", duration)
  if rawget(tx, RES_KEY) == nil then api.set_response(tx, status, "", {}) end
end

-- For --hook-errors open: what a failing hook changed is undone.

-- tx.upstream as it is: a hook changes its fields in place, so the
-- snapshot holds a copy (one with a metatable of a script's is kept as it
-- is: its fields may not be its own).
local function upstream_copy(u)
  if type(u) ~= "table" or getmetatable(u) ~= nil then return u end
  local c = {}
  for k, v in next, u do c[k] = v end
  return c
end

function api.snapshot(tx)
  local r, s = req_data(tx), res_data(tx)
  local snap = { req = {}, upstream = upstream_copy(rawget(tx, "upstream")),
                 intercept = rawget(tx, "_intercept") }
  for k, v in pairs(r) do snap.req[k] = v end
  snap.req.headers = copy_headers(r.headers)
  if s then
    snap.res = { status = s.status, reason = s.reason, reason_set = s.reason_set,
                 headers = copy_headers(s.headers), filter_body = s.filter_body,
                 decode_body = s.decode_body }
  end
  return snap
end

function api.restore(tx, snap)
  local r, s = req_data(tx), res_data(tx)
  -- What the hook added goes too (its filter_body or buffer_body): the
  -- snapshot holds every field the request had.
  for k in next, r do
    if snap.req[k] == nil then r[k] = nil end
  end
  for k, v in pairs(snap.req) do r[k] = v end
  r.url = nil -- made again from what was restored
  r[CHANGED] = true
  rawset(tx, "upstream", snap.upstream)
  rawset(tx, "_intercept", snap.intercept)
  rawset(tx, "_respond", nil)
  if s and snap.res then
    s.status, s.reason, s.headers = snap.res.status, snap.res.reason, snap.res.headers
    s.reason_set = snap.res.reason_set
    s.filter_body, s.decode_body = snap.res.filter_body, snap.res.decode_body
    s[CHANGED] = true
  end
end

-- For the flow viewer: what one hook call changed, so that with several
-- scripts each change is shown next to the one that made it. change_base()
-- is taken before a call and changes() after it, only while flows are
-- captured (a copy of the heads per call is what that costs).
local function field_map(h)
  fill(h)
  local m, order = {}, {}
  for i = 1, rawlen(h), 2 do
    local name = rawget(h, i)
    local k = lower(name)
    if m[k] == nil then
      m[k] = rawget(h, i + 1)
      order[#order + 1] = name
    else
      m[k] = m[k] .. "\0" .. rawget(h, i + 1)
    end
  end
  return m, order
end

local function diff_fields(out, what, before, after)
  local mb, ob = field_map(before)
  local ma, oa = field_map(after)
  for _, name in ipairs(oa) do
    local k = lower(name)
    if mb[k] == nil then
      out[#out + 1] = what .. " header " .. name .. " added"
    elseif mb[k] ~= ma[k] then
      out[#out + 1] = what .. " header " .. name .. " changed"
    end
  end
  for _, name in ipairs(ob) do
    if ma[lower(name)] == nil then out[#out + 1] = what .. " header " .. name .. " removed" end
  end
end

local function upstream_text(u)
  if type(u) ~= "table" then return tostring(u) end
  return (u.tls and "https://" or "http://") .. tostring(u.host) .. ":" .. tostring(u.port)
    .. (u.proxy and (" via " .. tostring(u.proxy)) or "")
end

function api.change_base(tx)
  local d, r = data_of(rawget(tx, REQ_KEY), true), res_data(tx)
  local b = { respond = rawget(tx, "_respond") }
  if d then b.method, b.url, b.headers = d.method, url_of(d), copy_headers(d.headers) end
  if r then b.status, b.res_headers = r.status, copy_headers(r.headers) end
  local u = rawget(tx, "upstream")
  if u ~= nil then b.upstream = upstream_text(u) end
  return b
end

-- nil, or the changes one per line ("request header X-Foo added", ...).
function api.changes(tx, b)
  local out = {}
  local d, r = data_of(rawget(tx, REQ_KEY), true), res_data(tx)
  if d and b.method == nil and (d[CHANGED] or list_changed(d.headers)) then
    -- tx.req was first read during this call: the exchange still holds
    -- the request as it was before it.
    local method, scheme, host, port, path, _, fields = native.request_of(tx)
    if method ~= nil then
      b.method, b.url = method, url_of({ scheme = scheme, host = host, port = port, path = path })
      b.headers = fields
    end
  end
  if d and b.method ~= nil then
    if d.method ~= b.method then out[#out + 1] = "request method " .. b.method .. " -> " .. d.method end
    local url = url_of(d)
    if url ~= b.url then out[#out + 1] = "request url " .. b.url .. " -> " .. url end
    diff_fields(out, "request", b.headers, d.headers)
  end
  if r and b.status ~= nil then
    if r.status ~= b.status then
      out[#out + 1] = "response status " .. b.status .. " -> " .. tostring(r.status)
    end
    diff_fields(out, "response", b.res_headers, r.headers)
  end
  local u = rawget(tx, "upstream")
  if b.upstream ~= nil and u ~= nil then
    local now = upstream_text(u)
    if now ~= b.upstream then out[#out + 1] = "upstream " .. b.upstream .. " -> " .. now end
  end
  local answer = rawget(tx, "_respond")
  if answer ~= nil and answer ~= b.respond then
    out[#out + 1] = "answered " .. answer.status .. " (tx:respond)"
  end
  if #out == 0 then return nil end
  return concat(out, "\n")
end

-- For --trace: a string that changes whenever a hook changes the request
-- and the upstream (request_side), or the response and the answer the hook
-- gives. C compares it before and after each call, and only when tracing.
function api.fingerprint(tx, request_side)
  local parts = {}
  local function add(v, depth)
    local t = type(v)
    if t == "table" then
      if depth > 4 then return end
      local keys = {}
      -- d.url is a cache of the fields beside it, made when first read:
      -- reading it changes nothing.
      for k in next, v do if not (depth == 0 and k == "url") then keys[#keys + 1] = k end end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      for _, k in ipairs(keys) do
        parts[#parts + 1] = tostring(k)
        add(rawget(v, k), depth + 1)
      end
    elseif t == "string" or t == "number" or t == "boolean" then
      parts[#parts + 1] = tostring(v)
    end
  end
  if request_side then
    local d = req_data(tx)
    if d then fill(d.headers) end
    add(d, 0)
    parts[#parts + 1] = "|"
    -- tx.upstream is made when first read, as tx_index_rest makes it.
    add(rawget(tx, "upstream") or (d and { host = d.host, port = d.port, tls = d.scheme == "https",
                                          proxy = rawget(tx, "_parent") }), 0)
    return table.concat(parts, "\0")
  end
  local r = res_data(tx)
  if r then fill(r.headers) end
  add(r, 0)
  parts[#parts + 1] = "|"
  add(rawget(tx, "_respond"), 0)
  return table.concat(parts, "\0")
end

return api
