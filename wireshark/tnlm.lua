-- tnlm.lua: Wireshark dissector for TNLM ("Time, Name, List, Message"), protocol version 1.
--
-- GENERATED FILE, DO NOT EDIT. It is rendered from tnlm-core's schema by
--   cargo run -p tnlm-wireshark
-- (sources: core/src/{frame,message,schema,error}.rs and wireshark/src/).
--
-- Works with Wireshark 4.0 (Lua 5.2) through 4.4+ (Lua 5.4). Install: copy this file to
-- your personal Lua plugins folder, or run `tshark -X lua_script:tnlm.lua ...`.
-- See wireshark/README.md for the filter fields.

local tnlm = Proto("tnlm", "TNLM Protocol")

-- Protocol constants (tnlm_core::frame).
local K = {
  magic = "TNLM",
  version = 1,
  header_len = 16,
  default_port = 4579,
  default_max_payload = 65536,
  status_delivered = 0,
}

-- The fixed header (tnlm_core::schema::HEADER), in wire order.
local HEADER = {
  { name = "magic", offset = 0, size = 4, kind = "string" },
  { name = "version", offset = 4, size = 1, kind = "uint" },
  { name = "type", offset = 5, size = 1, kind = "uint" },
  { name = "class", offset = 6, size = 1, kind = "uint" },
  { name = "reserved", offset = 7, size = 1, kind = "uint" },
  { name = "request_id", offset = 8, size = 4, kind = "uint" },
  { name = "length", offset = 12, size = 4, kind = "uint" },
}

-- Type codes (tnlm_core::TypeCode): byte -> name.
local TYPE_NAMES = {
  [0x54] = "time", -- 'T'
  [0x4E] = "name", -- 'N'
  [0x4C] = "list", -- 'L'
  [0x4D] = "message", -- 'M'
  [0x48] = "hello", -- 'H'
  [0x53] = "shutdown", -- 'S'
  [0x45] = "error", -- 'E'
  [0x50] = "ping", -- 'P'
  [0x41] = "ack", -- 'A'
}

-- Classes (tnlm_core::Class): byte -> name, and name -> byte.
local CLASS_NAMES = {
  [0] = "request",
  [1] = "response",
  [2] = "indication",
}
local CLASS = {
  request = 0,
  response = 1,
  indication = 2,
}

-- Delivery status codes (tnlm_core::message::DeliveryStatus).
local STATUS_NAMES = {
  [0] = "delivered",
  [1] = "no_such_client",
  [2] = "target_gone",
  [3] = "queue_full",
  [4] = "too_large",
  [5] = "not_acknowledged",
}

-- Error codes (tnlm_core::ErrorCode).
local ERROR_NAMES = {
  [1] = "bad_magic",
  [2] = "unsupported_version",
  [3] = "oversize",
  [4] = "malformed_payload",
  [5] = "unknown_type",
  [6] = "invalid_header",
  [7] = "unexpected_frame",
  [8] = "truncated",
  [9] = "too_many_clients",
  [10] = "timeout",
  [11] = "slow_consumer",
}

-- IP address families (tnlm_core::schema::IP_FAMILIES): variant -> name, and sizes.
local IP_FAMILY_NAMES = {
  [0] = "IPv4",
  [1] = "IPv6",
}
local IP_FAMILY_SIZES = {
  [0] = 4,
  [1] = 16,
}

-- Fields: F[<filter without "tnlm.">] (tnlm_core::schema filters).
local F = {}
F["magic"] = ProtoField.string("tnlm.magic", "Magic", base.ASCII, "the ASCII bytes TNLM")
F["version"] = ProtoField.uint8("tnlm.version", "Version", base.DEC, nil, nil, "protocol version, 1")
F["type"] = ProtoField.char("tnlm.type", "Type", base.HEX, TYPE_NAMES, nil, "type code, an ASCII letter")
F["class"] = ProtoField.uint8("tnlm.class", "Class", base.DEC, CLASS_NAMES, nil, "0 = request, 1 = response, 2 = indication")
F["reserved"] = ProtoField.uint8("tnlm.reserved", "Reserved", base.HEX, nil, nil, "must be 0")
F["request_id"] = ProtoField.uint32("tnlm.request_id", "Request ID", base.DEC, nil, nil, "u32 LE; chosen by the client, echoed by the response; in indications 0, except M (the delivery id) and P (the ping id), which the client echoes")
F["length"] = ProtoField.uint32("tnlm.length", "Length", base.DEC, nil, nil, "u32 LE; payload bytes that follow")
F["header"] = ProtoField.none("tnlm.header", "Header", "The fixed header")
F["payload"] = ProtoField.none("tnlm.payload", "Payload", "The bincode payload")
F["data"] = ProtoField.bytes("tnlm.data", "Data", nil, "Bytes that could not be interpreted")
F["string.length"] = ProtoField.uint64("tnlm.string.length", "Length", base.DEC, nil, nil, "u64 LE length: the byte length of the string that follows")
F["msg.to"] = ProtoField.uint32("tnlm.msg.to", "To", base.DEC, nil, nil, "u32 LE; in SendRequest, Delivery")
F["msg.text"] = ProtoField.string("tnlm.msg.text", "Text", base.UNICODE, "u64 LE length + UTF-8 bytes; in SendRequest, Forwarded")
F["time"] = ProtoField.string("tnlm.time", "Time", base.UNICODE, "u64 LE length + UTF-8 bytes; in TimeResponse")
F["name"] = ProtoField.string("tnlm.name", "Name", base.UNICODE, "u64 LE length + UTF-8 bytes; in NameResponse")
F["clients"] = ProtoField.uint64("tnlm.clients", "Clients", base.DEC, nil, nil, "u64 LE count + that many client entries; in ListResponse")
F["client"] = ProtoField.none("tnlm.client", "Client", "One client entry (a subtree); in ListResponse")
F["client.id"] = ProtoField.uint32("tnlm.client.id", "ID", base.DEC, nil, nil, "u32 LE; in ListResponse")
F["client.ip"] = ProtoField.ipv4("tnlm.client.ip", "IP", "IPv4 address (family 0); in ListResponse")
F["client.ipv6"] = ProtoField.ipv6("tnlm.client.ipv6", "IPv6", "IPv6 address (family 1); in ListResponse")
F["client.ip.family"] = ProtoField.uint32("tnlm.client.ip.family", "IP family", base.DEC, IP_FAMILY_NAMES, nil, "u32 LE family (0 = IPv4, 1 = IPv6) + 4 or 16 bytes; in ListResponse")
F["client.port"] = ProtoField.uint16("tnlm.client.port", "Port", base.DEC, nil, nil, "u16 LE; in ListResponse")
F["client.since"] = ProtoField.string("tnlm.client.since", "Since", base.UNICODE, "u64 LE length + UTF-8 bytes; in ListResponse")
F["status"] = ProtoField.uint16("tnlm.status", "Status", base.DEC, STATUS_NAMES, nil, "u16 LE delivery status; in Delivery")
F["reason"] = ProtoField.string("tnlm.reason", "Reason", base.UNICODE, "u64 LE length + UTF-8 bytes; in Delivery")
F["msg.from"] = ProtoField.uint32("tnlm.msg.from", "From", base.DEC, nil, nil, "u32 LE; in Forwarded")
F["msg.from_ip"] = ProtoField.ipv4("tnlm.msg.from_ip", "From IP", "IPv4 address (family 0); in Forwarded")
F["msg.from_ipv6"] = ProtoField.ipv6("tnlm.msg.from_ipv6", "From IPv6", "IPv6 address (family 1); in Forwarded")
F["msg.from_ip.family"] = ProtoField.uint32("tnlm.msg.from_ip.family", "From IP family", base.DEC, IP_FAMILY_NAMES, nil, "u32 LE family (0 = IPv4, 1 = IPv6) + 4 or 16 bytes; in Forwarded")
F["msg.from_port"] = ProtoField.uint16("tnlm.msg.from_port", "From port", base.DEC, nil, nil, "u16 LE; in Forwarded")
F["hello.client_id"] = ProtoField.uint32("tnlm.hello.client_id", "Client ID", base.DEC, nil, nil, "u32 LE; in Hello")
F["hello.server"] = ProtoField.string("tnlm.hello.server", "Server", base.UNICODE, "u64 LE length + UTF-8 bytes; in Hello")
F["hello.version"] = ProtoField.uint8("tnlm.hello.version", "Version", base.DEC, nil, nil, "u8; in Hello")
F["hello.max_payload"] = ProtoField.uint32("tnlm.hello.max_payload", "Max payload", base.DEC, nil, nil, "u32 LE; in Hello")
F["shutdown.reason"] = ProtoField.string("tnlm.shutdown.reason", "Reason", base.UNICODE, "u64 LE length + UTF-8 bytes; in Shutdown")
F["error.code"] = ProtoField.uint16("tnlm.error.code", "Code", base.DEC, ERROR_NAMES, nil, "u16 LE error code; in ErrorBody")
F["error.text"] = ProtoField.string("tnlm.error.text", "Text", base.UNICODE, "u64 LE length + UTF-8 bytes; in ErrorBody")
F["response_in"] = ProtoField.framenum("tnlm.response_in", "Response in", base.NONE, frametype.RESPONSE, nil, "The frame with the answer to this request (or server ping or forwarded message)")
F["request_in"] = ProtoField.framenum("tnlm.request_in", "Request in", base.NONE, frametype.REQUEST, nil, "The frame with the request (or server ping or forwarded message) this answers")
F["response_time"] = ProtoField.relative_time("tnlm.response_time", "Response time", "Time from the request to this answer")
F["conn.client_id"] = ProtoField.uint32("tnlm.conn.client_id", "Connection's client ID", base.DEC, nil, nil, "This connection's client id, from its hello")
F["conn.server"] = ProtoField.string("tnlm.conn.server", "Connection's server", base.UNICODE, "The server name this connection's hello announced")
F["trace"] = ProtoField.none("tnlm.trace", "Message trace", "A message followed from its M request to the delivery response")
F["trace.key"] = ProtoField.string("tnlm.trace.key", "Trace key", base.UNICODE, "The sender's client id, a dot, its request id, @, the server's address and port (e.g. 1.3@127.0.0.1:4579): the same on every frame of one message's trace")
F["trace.request_in"] = ProtoField.framenum("tnlm.trace.request_in", "M request in", base.NONE, frametype.REQUEST, nil, "The sender's M request")
F["trace.indication_in"] = ProtoField.framenum("tnlm.trace.indication_in", "M indication in", base.NONE, frametype.NONE, nil, "The M indication that forwarded the message to its target")
F["trace.delivery_id"] = ProtoField.uint32("tnlm.trace.delivery_id", "Delivery ID", base.DEC, nil, nil, "The id of the forwarded message (the M indication's request id)")
F["trace.ack_in"] = ProtoField.framenum("tnlm.trace.ack_in", "Ack in", base.NONE, frametype.ACK, nil, "The target's A ack")
F["trace.response_in"] = ProtoField.framenum("tnlm.trace.response_in", "Delivery response in", base.NONE, frametype.RESPONSE, nil, "The M response that told the sender the outcome")
F["trace.forward_time"] = ProtoField.relative_time("tnlm.trace.forward_time", "Forward time", "Time from the M request to the M indication")
F["trace.time"] = ProtoField.relative_time("tnlm.trace.time", "Delivery time", "End to end: time from the M request to its M response")
tnlm.fields = {
  F["magic"],
  F["version"],
  F["type"],
  F["class"],
  F["reserved"],
  F["request_id"],
  F["length"],
  F["header"],
  F["payload"],
  F["data"],
  F["string.length"],
  F["msg.to"],
  F["msg.text"],
  F["time"],
  F["name"],
  F["clients"],
  F["client"],
  F["client.id"],
  F["client.ip"],
  F["client.ipv6"],
  F["client.ip.family"],
  F["client.port"],
  F["client.since"],
  F["status"],
  F["reason"],
  F["msg.from"],
  F["msg.from_ip"],
  F["msg.from_ipv6"],
  F["msg.from_ip.family"],
  F["msg.from_port"],
  F["hello.client_id"],
  F["hello.server"],
  F["hello.version"],
  F["hello.max_payload"],
  F["shutdown.reason"],
  F["error.code"],
  F["error.text"],
  F["response_in"],
  F["request_in"],
  F["response_time"],
  F["conn.client_id"],
  F["conn.server"],
  F["trace"],
  F["trace.key"],
  F["trace.request_in"],
  F["trace.indication_in"],
  F["trace.delivery_id"],
  F["trace.ack_in"],
  F["trace.response_in"],
  F["trace.forward_time"],
  F["trace.time"],
}

-- Expert info, by role.
local EXPERT = {
  bad_magic = ProtoExpert.new("tnlm.expert.bad_magic", "Bad magic: not the start of a TNLM frame", expert.group.MALFORMED, expert.severity.ERROR),
  unsupported_version = ProtoExpert.new("tnlm.expert.unsupported_version", "Unsupported protocol version", expert.group.PROTOCOL, expert.severity.ERROR),
  oversize = ProtoExpert.new("tnlm.expert.oversize", "Payload length exceeds the maximum payload", expert.group.MALFORMED, expert.severity.ERROR),
  malformed = ProtoExpert.new("tnlm.expert.malformed_payload", "Payload does not decode", expert.group.MALFORMED, expert.severity.ERROR),
  unknown_type = ProtoExpert.new("tnlm.expert.unknown_type", "Unknown type code or class", expert.group.PROTOCOL, expert.severity.WARN),
  unexpected = ProtoExpert.new("tnlm.expert.unexpected_frame", "Known type and class that name no message", expert.group.PROTOCOL, expert.severity.WARN),
  reserved = ProtoExpert.new("tnlm.expert.invalid_header", "Reserved header byte is not zero", expert.group.PROTOCOL, expert.severity.WARN),
  error_frame = ProtoExpert.new("tnlm.expert.error_frame", "Error frame", expert.group.RESPONSE_CODE, expert.severity.NOTE),
  undelivered = ProtoExpert.new("tnlm.expert.undelivered", "Message not delivered", expert.group.RESPONSE_CODE, expert.severity.NOTE),
  unknown_code = ProtoExpert.new("tnlm.expert.unknown_code", "Unknown status or error code (from a newer peer?)", expert.group.RESPONSE_CODE, expert.severity.NOTE),
  no_response = ProtoExpert.new("tnlm.expert.no_response", "No answer in this capture", expert.group.SEQUENCE, expert.severity.WARN),
}
tnlm.experts = {
  EXPERT.bad_magic,
  EXPERT.unsupported_version,
  EXPERT.oversize,
  EXPERT.malformed,
  EXPERT.unknown_type,
  EXPERT.unexpected,
  EXPERT.reserved,
  EXPERT.error_frame,
  EXPERT.undelivered,
  EXPERT.unknown_code,
  EXPERT.no_response,
}

-- Senders, and the wording of code kinds in expert info.
local SENDER = { client = 0, server = 1 }
local CODE_KINDS = { status = "delivery status", error = "error code" }

-- Exchanges (tnlm_core::schema::EXCHANGES), keyed by kind = type * 4 + class.
-- ASKS[kind]: who sends this frame that expects an answer.
local ASKS = {
  [336] = 0, -- T request
  [312] = 0, -- N request
  [304] = 0, -- L request
  [308] = 0, -- M request
  [320] = 0, -- P request
  [322] = 1, -- P indication
  [310] = 1, -- M indication
}
-- ANSWERS[kind]: the asks (by kind) this frame answers; any_request: every client request.
local ANSWERS = {}
ANSWERS[261] = { [310] = true } -- A response
ANSWERS[277] = { any_request = true } -- E response
ANSWERS[305] = { [304] = true } -- L response
ANSWERS[309] = { [308] = true } -- M response
ANSWERS[313] = { [312] = true } -- N response
ANSWERS[321] = { [320] = true, [322] = true } -- P response
ANSWERS[337] = { [336] = true } -- T response
-- ANSWER_SENDER[kind]: who sends this answer (absent: either side, the port tells).
local ANSWER_SENDER = {
  [261] = 0, -- A response
  [277] = 1, -- E response
  [305] = 1, -- L response
  [309] = 1, -- M response
  [313] = 1, -- N response
  [337] = 1, -- T response
}
-- The message trace: an M request, the M indication forwarding it, the A ack, the M response.
local TRACE = {
  hello = 290, client_id = "client_id", server = "server",
  request = 308, to = "to", text = "text",
  indication = 310, from = "from", ack = 261,
}

-- Messages (tnlm_core::schema::catalog): MESSAGES[type byte][class byte].
local MESSAGES = {}
MESSAGES[0x54] = {} -- time
MESSAGES[0x4E] = {} -- name
MESSAGES[0x4C] = {} -- list
MESSAGES[0x4D] = {} -- message
MESSAGES[0x48] = {} -- hello
MESSAGES[0x53] = {} -- shutdown
MESSAGES[0x45] = {} -- error
MESSAGES[0x50] = {} -- ping
MESSAGES[0x41] = {} -- ack
MESSAGES[0x54][0] = { payload = "TimeRequest", summary = nil,
  fields = {
  } }
MESSAGES[0x4E][0] = { payload = "NameRequest", summary = nil,
  fields = {
  } }
MESSAGES[0x4C][0] = { payload = "ListRequest", summary = nil,
  fields = {
  } }
MESSAGES[0x4D][0] = { payload = "SendRequest", summary = function(v) return " to " .. v["to"] .. ": " .. v["text"] end,
  fields = {
    { name = "to", wire = "uint", size = 4, f = F["msg.to"] },
    { name = "text", wire = "string", f = F["msg.text"] },
  } }
MESSAGES[0x54][1] = { payload = "TimeResponse", summary = function(v) return ": " .. v["time"] end,
  fields = {
    { name = "time", wire = "string", f = F["time"] },
  } }
MESSAGES[0x4E][1] = { payload = "NameResponse", summary = function(v) return ": " .. v["name"] end,
  fields = {
    { name = "name", wire = "string", f = F["name"] },
  } }
MESSAGES[0x4C][1] = { payload = "ListResponse", summary = function(v) return ": " .. v["clients"] end,
  fields = {
    { name = "clients", wire = "list", f = F["clients"], item = F["client"], label = "Client", min_size = 22,
      summary = function(v) return " " .. v["id"] .. ": " .. v["ip"] .. " port " .. v["port"] .. ", since " .. v["since"] end,
      fields = {
        { name = "id", wire = "uint", size = 4, f = F["client.id"] },
        { name = "ip", wire = "ip", f = F["client.ip"], f6 = F["client.ipv6"], family = F["client.ip.family"] },
        { name = "port", wire = "uint", size = 2, f = F["client.port"] },
        { name = "since", wire = "string", f = F["client.since"] },
      }    },
  } }
MESSAGES[0x4D][1] = { payload = "Delivery", summary = function(v) return ": " .. v["status"] .. " to " .. v["to"] .. " (" .. v["reason"] .. ")" end,
  fields = {
    { name = "to", wire = "uint", size = 4, f = F["msg.to"] },
    { name = "status", wire = "status", size = 2, f = F["status"] },
    { name = "reason", wire = "string", f = F["reason"] },
  } }
MESSAGES[0x4D][2] = { payload = "Forwarded", summary = function(v) return " from " .. v["from"] .. ": " .. v["text"] end,
  fields = {
    { name = "from", wire = "uint", size = 4, f = F["msg.from"] },
    { name = "from_ip", wire = "ip", f = F["msg.from_ip"], f6 = F["msg.from_ipv6"], family = F["msg.from_ip.family"] },
    { name = "from_port", wire = "uint", size = 2, f = F["msg.from_port"] },
    { name = "text", wire = "string", f = F["msg.text"] },
  } }
MESSAGES[0x48][2] = { payload = "Hello", summary = function(v) return ": client " .. v["client_id"] .. " on " .. v["server"] .. ", version " .. v["version"] .. ", max payload " .. v["max_payload"] end,
  fields = {
    { name = "client_id", wire = "uint", size = 4, f = F["hello.client_id"] },
    { name = "server", wire = "string", f = F["hello.server"] },
    { name = "version", wire = "uint", size = 1, f = F["hello.version"] },
    { name = "max_payload", wire = "uint", size = 4, f = F["hello.max_payload"] },
  } }
MESSAGES[0x53][2] = { payload = "Shutdown", summary = function(v) return ": " .. v["reason"] end,
  fields = {
    { name = "reason", wire = "string", f = F["shutdown.reason"] },
  } }
MESSAGES[0x45][1] = { payload = "ErrorBody", summary = function(v) return ": " .. v["code"] .. ": " .. v["text"] end,
  fields = {
    { name = "code", wire = "error", size = 2, f = F["error.code"] },
    { name = "text", wire = "string", f = F["error.text"] },
  } }
MESSAGES[0x50][0] = { payload = "PingRequest", summary = nil,
  fields = {
  } }
MESSAGES[0x50][2] = { payload = "ServerPing", summary = nil,
  fields = {
  } }
MESSAGES[0x50][1] = { payload = "Pong", summary = nil,
  fields = {
  } }
MESSAGES[0x41][1] = { payload = "Ack", summary = nil,
  fields = {
  } }

-- ---------------------------------------------------------------------------
-- Engine (wireshark/src/engine.lua): walks the tables above. No protocol
-- constant lives below this line. Only constructs that Lua 5.2 and 5.4 both
-- accept; no bit operators, no integer division, no string.pack.
-- ---------------------------------------------------------------------------

local H = {}
for _, h in ipairs(HEADER) do
  H[h.name] = h
end
local HLEN = K.header_len

-- Where decode_field keeps a string's exact text, next to its display text.
local function raw_keys(fields)
  for _, fd in ipairs(fields) do
    fd.raw = "=" .. fd.name
    if fd.fields then
      raw_keys(fd.fields)
    end
  end
end
for _, by_class in pairs(MESSAGES) do
  for _, message in pairs(by_class) do
    raw_keys(message.fields)
  end
end
-- Largest PDU length handed back to Wireshark (it is stored in a C int).
local MAX_PDU = 2147483647

tnlm.prefs.ports = Pref.range("TCP ports", tostring(K.default_port),
  "TCP ports on which TNLM is decoded, e.g. 4579,5000-5010 (empty: heuristic only)", 65535)
tnlm.prefs.max_payload = Pref.uint("Maximum payload (bytes)", K.default_max_payload,
  "A length field above this is reported as oversize and not reassembled")

-- Integers (at most 2^32) as text, without a decimal point on Lua 5.3+.
local function num(n)
  return string.format("%.0f", n)
end

-- Text for the Info column and tree labels: control characters become spaces,
-- long text is cut at a UTF-8 character boundary.
local MAX_TEXT = 48
local function display_text(s)
  if string.find(s, "[\0-\31\127]") then
    s = string.gsub(s, "[\0-\31\127]", " ")
  end
  if #s > MAX_TEXT then
    local cut = MAX_TEXT
    while cut > 0 do
      local b = string.byte(s, cut + 1)
      if b < 0x80 or b >= 0xC0 then
        break
      end
      cut = cut - 1
    end
    s = string.sub(s, 1, cut) .. "..."
  end
  return s
end

-- Strict UTF-8 check (as Rust's str::from_utf8: no overlongs, surrogates or > U+10FFFF).
local function valid_utf8(s)
  if not string.find(s, "[\128-\255]") then
    return true
  end
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local extra, lo, hi
      if c >= 0xC2 and c <= 0xDF then
        extra, lo, hi = 1, 0x80, 0xBF
      elseif c >= 0xE0 and c <= 0xEF then
        extra, lo, hi = 2, 0x80, 0xBF
        if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
      elseif c >= 0xF0 and c <= 0xF4 then
        extra, lo, hi = 3, 0x80, 0xBF
        if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      else
        return false
      end
      if i + extra > n then
        return false
      end
      local c2 = string.byte(s, i + 1)
      if c2 < lo or c2 > hi then
        return false
      end
      for j = i + 2, i + extra do
        local cj = string.byte(s, j)
        if cj < 0x80 or cj > 0xBF then
          return false
        end
      end
      i = i + extra + 1
    end
  end
  return true
end

local function ipv4_text(raw)
  return string.format("%d.%d.%d.%d", string.byte(raw, 1, 4))
end

-- RFC 5952 text, as Rust's Ipv6Addr displays it.
local function ipv6_text(raw)
  local g = {}
  for i = 1, 16, 2 do
    g[#g + 1] = string.byte(raw, i) * 256 + string.byte(raw, i + 1)
  end
  if g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0 and g[6] == 65535 then
    return "::ffff:" .. ipv4_text(string.sub(raw, 13, 16))
  end
  local best_at, best_len, at, len = 0, 0, 0, 0
  for i = 1, 8 do
    if g[i] == 0 then
      if len == 0 then at = i end
      len = len + 1
      if len > best_len then best_at, best_len = at, len end
    else
      len = 0
    end
  end
  local function join(from, to)
    local parts = {}
    for i = from, to do
      parts[#parts + 1] = string.format("%x", g[i])
    end
    return table.concat(parts, ":")
  end
  if best_len < 2 then
    return join(1, 8)
  end
  return join(1, best_at - 1) .. "::" .. join(best_at + best_len, 8)
end

-- The little-endian unsigned integer of `size` bytes at byte `offset` of the string s.
local function le_uint(s, offset, size)
  -- The common sizes with one string.byte call (each call costs more than the sums).
  if size == 4 then
    local a, b, c, d = string.byte(s, offset + 1, offset + 4)
    return a + b * 256 + c * 65536 + d * 16777216
  elseif size == 1 then
    return string.byte(s, offset + 1)
  elseif size == 2 then
    local a, b = string.byte(s, offset + 1, offset + 2)
    return a + b * 256
  end
  local value = 0
  for i = offset + size, offset + 1, -1 do
    value = value * 256 + string.byte(s, i)
  end
  return value
end

local function type_letter(t)
  if t >= 0x21 and t <= 0x7E then
    return string.char(t)
  end
  return string.format("0x%02x", t)
end

-- Reads `fields` from tvb[at, limit) into tree; s holds the same bytes as tvb, as a
-- string, and the values are read from it (one Wireshark API call per field fewer).
-- Returns the offset after them and the table of display values by field name, or
-- nil and why not. Every read is bounds-checked first, so no read ever throws.
local decode_fields

local function decode_field(tvb, s, tree, at, limit, fd, v)
  local left = limit - at
  if fd.wire == "uint" or fd.wire == "status" or fd.wire == "error" then
    if left < fd.size then
      return nil, fd.name .. ": needs " .. fd.size .. " bytes, " .. left .. " left"
    end
    local value = le_uint(s, at, fd.size)
    local item = tree:add(fd.f, tvb(at, fd.size), value)
    if fd.wire == "uint" then
      v[fd.name] = num(value)
    else
      local names = (fd.wire == "status") and STATUS_NAMES or ERROR_NAMES
      local name = names[value]
      if name == nil then
        -- A newer peer's code: shown, not an error (the stream stays in step).
        name = "Unknown (" .. num(value) .. ")"
        item:add_proto_expert_info(EXPERT.unknown_code, "Unknown " .. CODE_KINDS[fd.wire] .. " " .. num(value)
          .. " (from a newer peer?)")
      end
      v[fd.name] = name
      -- Remembered by wire type for the expert info below.
      v["#" .. fd.wire] = value
      v["@" .. fd.wire] = name
    end
    return at + fd.size, item
  elseif fd.wire == "string" then
    if left < 8 then
      return nil, fd.name .. ": needs an 8-byte length, " .. left .. " bytes left"
    end
    local len = le_uint(s, at, 4)
    local high = le_uint(s, at + 4, 4)
    if high ~= 0 or len > left - 8 then
      return nil, fd.name .. ": string length exceeds the " .. (left - 8) .. " bytes left"
    end
    local raw = string.sub(s, at + 9, at + 8 + len)
    if not valid_utf8(raw) then
      return nil, fd.name .. ": not valid UTF-8"
    end
    local item = tree:add(fd.f, tvb(at, 8 + len), raw)
    -- FT_UINT64: read by Wireshark (its Lua API takes a UInt64, not a number, as value).
    item:add_le(F["string.length"], tvb(at, 8))
    v[fd.name] = display_text(raw)
    v[fd.raw] = raw
    return at + 8 + len, item
  elseif fd.wire == "ip" then
    if left < 4 then
      return nil, fd.name .. ": needs a 4-byte address family, " .. left .. " bytes left"
    end
    local family = le_uint(s, at, 4)
    local size = IP_FAMILY_SIZES[family]
    if size == nil then
      return nil, fd.name .. ": unknown address family " .. num(family)
    end
    if left < 4 + size then
      return nil, fd.name .. ": needs " .. (4 + size) .. " bytes, " .. left .. " left"
    end
    local raw = string.sub(s, at + 5, at + 4 + size)
    local item
    if size == 4 then
      item = tree:add(fd.f, tvb(at + 4, size))
      v[fd.name] = ipv4_text(raw)
    else
      item = tree:add(fd.f6, tvb(at + 4, size))
      v[fd.name] = ipv6_text(raw)
    end
    item:add(fd.family, tvb(at, 4), family)
    return at + 4 + size, item
  elseif fd.wire == "list" then
    if left < 8 then
      return nil, fd.name .. ": needs an 8-byte count, " .. left .. " bytes left"
    end
    local count = le_uint(s, at, 4)
    local high = le_uint(s, at + 4, 4)
    if high ~= 0 or count > (left - 8) / fd.min_size then
      return nil, fd.name .. ": count exceeds what the " .. (left - 8) .. " bytes left can hold"
    end
    local list_item = tree:add_le(fd.f, tvb(at, 8))
    local pos = at + 8
    for i = 1, count do
      local sub = list_item:add(fd.item, tvb(pos, limit - pos))
      local sv = {}
      local after, err = decode_fields(tvb, s, sub, pos, limit, fd.fields, sv)
      if after == nil then
        sub:set_text(fd.label .. " " .. i .. " (malformed)")
        return nil, fd.name .. " entry " .. i .. ": " .. err
      end
      sub:set_len(after - pos)
      if fd.summary then
        sub:set_text(fd.label .. fd.summary(sv))
      end
      pos = after
    end
    if count == 1 then
      v[fd.name] = "1 " .. string.lower(fd.label)
    else
      v[fd.name] = num(count) .. " " .. string.lower(fd.label) .. "s"
    end
    return pos, list_item
  end
  return nil, fd.name .. ": unknown wire type " .. tostring(fd.wire)
end

decode_fields = function(tvb, s, tree, at, limit, fields, v)
  for _, fd in ipairs(fields) do
    local after, err = decode_field(tvb, s, tree, at, limit, fd, v)
    if after == nil then
      return nil, err
    end
    at = after
  end
  return at
end

-- The maximum payload preference, capped; read again when preferences change (a
-- preference read is a Wireshark API call, too dear for every frame).
local max_payload_now
local function read_max_payload()
  local max = tnlm.prefs.max_payload
  if max > MAX_PDU - HLEN then
    max = MAX_PDU - HLEN
  end
  max_payload_now = max
end
read_max_payload()
local function max_payload()
  return max_payload_now
end

-- Dissects one PDU (tvb starts at its magic; raw holds its bytes as a string, and
-- every value is decoded from it: each Wireshark API call, a TvbRange or a read,
-- costs more than the Lua around it). Returns the Info text.
local function dissect_frame(tvb, root, pdu, raw)
  local avail = #raw
  if avail < HLEN then
    local item = root:add(F.data, tvb(0, avail))
    item:add_proto_expert_info(EXPERT.malformed, "Truncated header: " .. avail .. " of " .. HLEN .. " bytes")
    return "truncated frame"
  end
  local magic = string.sub(raw, H.magic.offset + 1, H.magic.offset + H.magic.size)
  local header = root:add(F.header, tvb(0, HLEN))
  if magic ~= K.magic then
    local item = header:add(F.magic, tvb(H.magic.offset, H.magic.size))
    item:add_proto_expert_info(EXPERT.bad_magic)
    root:add(F.data, tvb(0, avail))
    return "bad magic, " .. avail .. " bytes"
  end
  local items, value = {}, {}
  for _, h in ipairs(HEADER) do
    local range = tvb(h.offset, h.size)
    if h.kind == "string" then
      items[h.name] = header:add(F[h.name], range, magic)
    elseif h.name == "type" then
      -- FT_CHAR: read by Wireshark (the Lua API of 4.0 takes no value for it).
      items[h.name] = header:add_le(F[h.name], range)
      value[h.name] = le_uint(raw, h.offset, h.size)
    else
      local n = le_uint(raw, h.offset, h.size)
      items[h.name] = header:add(F[h.name], range, n)
      value[h.name] = n
    end
  end
  local t, c, id, length = value.type, value.class, value.request_id, value.length
  pdu.t, pdu.c, pdu.id = t, c, id
  local prefix = type_letter(t) .. " " .. (CLASS_NAMES[c] or ("class " .. c))
  pdu.head = prefix
  if c ~= CLASS.indication or id ~= 0 then
    pdu.tag = "#" .. num(id)
    prefix = prefix .. " " .. pdu.tag
  end
  pdu.prefix = prefix
  header:append_text(": " .. prefix .. ", " .. num(length) .. " payload bytes")
  if value.reserved ~= 0 then
    items.reserved:add_proto_expert_info(EXPERT.reserved)
  end
  if value.version ~= K.version then
    items.version:add_proto_expert_info(EXPERT.unsupported_version,
      "Unsupported protocol version " .. value.version .. " (this dissector knows " .. K.version .. ")")
    if avail > HLEN then
      root:add(F.data, tvb(HLEN, avail - HLEN))
    end
    return prefix .. " [unsupported version " .. value.version .. "]"
  end
  if length > max_payload() then
    items.length:add_proto_expert_info(EXPERT.oversize,
      "Payload length " .. num(length) .. " exceeds the maximum payload of " .. num(max_payload()) .. " bytes")
    if avail > HLEN then
      root:add(F.data, tvb(HLEN, avail - HLEN))
    end
    return prefix .. " [oversize: " .. num(length) .. " bytes]"
  end
  local limit = HLEN + length
  if avail < limit then
    root:add_proto_expert_info(EXPERT.malformed,
      "Payload truncated: " .. (avail - HLEN) .. " of " .. num(length) .. " bytes captured")
    if avail > HLEN then
      root:add(F.data, tvb(HLEN, avail - HLEN))
    end
    return prefix .. " [truncated]"
  end
  local message = MESSAGES[t] and MESSAGES[t][c]
  if message == nil then
    -- Both bytes known but no such message (a T indication): unexpected_frame;
    -- a letter or class that version 1 does not define: unknown_type.
    local known = TYPE_NAMES[t] ~= nil and CLASS_NAMES[c] ~= nil
    local item = items.type
    if TYPE_NAMES[t] ~= nil then
      item = items.class
    end
    if known then
      item:add_proto_expert_info(EXPERT.unexpected,
        "No " .. type_letter(t) .. " message has class " .. c)
    else
      item:add_proto_expert_info(EXPERT.unknown_type,
        "Unknown type " .. type_letter(t) .. " with class " .. c)
    end
    if length > 0 then
      root:add(F.data, tvb(HLEN, length))
    end
    if known then
      return prefix .. " [unexpected]"
    end
    return prefix .. " [unknown type]"
  end
  if length == 0 then
    if #message.fields == 0 then
      pdu.v = {}
      return prefix
    end
    items.length:add_proto_expert_info(EXPERT.malformed, "Malformed " .. message.payload .. ": empty payload")
    return prefix .. " [malformed " .. message.payload .. "]"
  end
  local payload = root:add(F.payload, tvb(HLEN, length))
  payload:append_text(": " .. message.payload)
  local v = {}
  local after, err = decode_fields(tvb, raw, payload, HLEN, limit, message.fields, v)
  if after == nil then
    payload:add_proto_expert_info(EXPERT.malformed, "Malformed " .. message.payload .. ": " .. err)
    return prefix .. " [malformed " .. message.payload .. "]"
  end
  if after < limit then
    payload:add_proto_expert_info(EXPERT.malformed,
      "Malformed " .. message.payload .. ": " .. (limit - after) .. " trailing bytes")
    return prefix .. " [malformed " .. message.payload .. "]"
  end
  pdu.v = v
  local info = prefix
  if message.summary then
    info = prefix .. message.summary(v)
  end
  if v["#error"] ~= nil then
    payload:add_proto_expert_info(EXPERT.error_frame, "Error frame: " .. v["@error"])
  end
  if v["#status"] ~= nil and v["#status"] ~= K.status_delivered then
    payload:add_proto_expert_info(EXPERT.undelivered, "Message not delivered: " .. v["@status"])
  end
  return info
end

-- ---------------------------------------------------------------------------
-- Tracking: request/response links, messages traced across connections, and the
-- facts each connection's hello tells. Recorded on the first pass (pinfo.visited
-- false: packets in capture order), shown on every pass from what was recorded,
-- so the GUI may dissect packets again in any order. Cleared by tnlm.init.
-- ---------------------------------------------------------------------------

-- The packet's number and whether it was dissected before, read from pinfo once per
-- call of the dissector (each read is a Wireshark API call) and used by the tracking and the Info column.
local packet = { number = -1, visited = false, at = -1, src = "", dst = "", key = "", heuristic = false }

-- The packet's endpoints ("address:port", IPv6 in brackets) and its connection's key
-- (both endpoints, the smaller first), read from pinfo at most once per packet. No
-- field extractor (Field.new) is used: in a pass without a tree it yields nothing, and
-- its mere existence makes tshark build a tree for every packet.
local function endpoint(address, port)
  local a = tostring(address)
  if string.find(a, ":", 1, true) then
    a = "[" .. a .. "]"
  end
  return a .. ":" .. num(port)
end

-- Turning an Address into text is dear (about 5 us), so the text is remembered per
-- pair of ports with the Address objects it was made from; a packet whose addresses
-- compare equal to those (a cheap call) reuses it. Cleared by tnlm.init.
local endpoint_cache = {}

local function read_endpoints(pinfo)
  if packet.at == packet.number then
    return
  end
  packet.at = packet.number
  local sp, dp = pinfo.src_port, pinfo.dst_port
  local sa, da = pinfo.src, pinfo.dst
  local ports = sp * 65536 + dp
  local seen = endpoint_cache[ports]
  if seen == nil then
    seen = {}
    endpoint_cache[ports] = seen
  end
  for i = 1, #seen do
    local e = seen[i]
    if e.sa == sa and e.da == da then
      packet.src, packet.dst, packet.key = e.src, e.dst, e.key
      return
    end
  end
  local src, dst = endpoint(sa, sp), endpoint(da, dp)
  local key
  if src < dst then
    key = src .. " " .. dst
  else
    key = dst .. " " .. src
  end
  seen[#seen + 1] = { sa = sa, da = da, src = src, dst = dst, key = key }
  packet.src, packet.dst, packet.key = src, dst, key
end

local CLIENT, SERVER = SENDER.client, SENDER.server

-- Exchanges are kept in four arrays of numbers indexed by the exchange's number (a
-- table per exchange would give each of Lua's garbage collections one object per
-- exchange to visit): the ask's kind * KEYS + its key (id * 2 + opener); the ask's frame
-- number; the answer's (absent: none yet); a time in nanoseconds (the ask's time while
-- open, the response time once answered). Arrays of numbers also beat records in a
-- ByteArray, whose every byte written was a Wireshark API call.
local KEYS = 8589934592

local state
local function reset_state()
  state = {
    -- connections in the order they were first seen: { id, client_id, server,
    -- server_ep, open = { [id * 2 + opener] = exchange } }
    conns = {},
    -- both endpoints -> the current connection between them (a hello on a connection
    -- that had one already starts a new one: the same ports used again)
    by_key = {},
    -- frame number -> its connection's index in conns
    frame_conn = {},
    n = 0,
    ex = { kind = {}, ask = {}, answer = {}, time = {} },
    -- frame number -> its first exchange; `more` holds the others
    at = {},
    more = {},
    trace = {},    -- exchange -> message trace (M requests and indications only)
    -- server endpoint, target id, sender id and text, joined by "\0" -> FIFO of message
    -- traces waiting for the indication that forwards them
    pending = {},
  }
end
reset_state()

-- A field of exchange ex: kind, ask, answer or time (0 when not set).
local function ex_get(ex, name)
  return state.ex[name][ex] or 0
end

local function ex_set(ex, name, value)
  state.ex[name][ex] = value
end

local function nanoseconds(seconds)
  return math.floor(seconds * 1e9 + 0.5)
end

local function new_conn(key)
  local st = { open = {}, id = #state.conns + 1 }
  state.conns[st.id] = st
  state.by_key[key] = st
  return st
end

-- The connection this packet belongs to: on the first pass, by its endpoints; on
-- later passes, as recorded then (so a reused pair of ports keeps its connections apart).
local function conn_of(pinfo)
  if packet.visited then
    local fc = state.frame_conn
    local st = state.conns[fc[packet.number] or 0]
    if st ~= nil then
      return st
    end
  end
  read_endpoints(pinfo)
  return state.by_key[packet.key] or new_conn(packet.key)
end

local function remember_conn(st)
  local fc = state.frame_conn
  fc[packet.number] = st.id
end

-- Who sent this PDU (CLIENT or SERVER), or nil when neither its kind nor the
-- connection's known server port tells.
local function sender_of(st, kind, c, pinfo)
  if c == CLASS.request then
    return CLIENT
  elseif c == CLASS.indication then
    return SERVER
  end
  local s = ANSWER_SENDER[kind]
  if s == nil and st.server_ep ~= nil then
    if packet.src == st.server_ep then
      s = SERVER
    else
      s = CLIENT
    end
  end
  return s
end

local function remember(number, ex)
  local at = state.at
  local first = at[number]
  if first == nil then
    at[number] = ex
  else
    local more = state.more[number]
    if more == nil then
      more = {}
      state.more[number] = more
    end
    more[#more + 1] = ex
  end
end

-- Whether exchange ex was recorded for this frame with this PDU as its ask (or answer).
local function fits(ex, number, id, opener, frame_field)
  if ex_get(ex, frame_field) ~= number then
    return false
  end
  local k = ex_get(ex, "kind") % KEYS
  if opener ~= nil then
    return k == id * 2 + opener
  end
  return k == id * 2 or k == id * 2 + 1
end

-- The exchange recorded for this frame whose ask (or answer) is this PDU, or nil.
local function lookup(number, id, opener, as_answer)
  local first = state.at[number]
  if first == nil then
    return nil
  end
  local field = as_answer and "answer" or "ask"
  if fits(first, number, id, opener, field) then
    return first
  end
  local more = state.more[number]
  if more ~= nil then
    for i = 1, #more do
      if fits(more[i], number, id, opener, field) then
        return more[i]
      end
    end
  end
  return nil
end

local function kind_of(ex)
  local k = ex_get(ex, "kind")
  return (k - k % KEYS) / KEYS
end

-- Message traces: an M request waits for the M indication that forwards it.
-- Message traces: an M request waits for the M indication that forwards it, matched
-- by what both say on the wire: the server (its endpoint), the target, the sender's id
-- (the request's connection's hello; the indication's `from`) and the text. So neither
-- two servers in one capture nor a server forwarding same-text messages in another
-- order than they came can cross two traces. Without the sender's hello, its id is "?".
local UNKNOWN_SENDER = "?"

local function trace_request(st, ex, pdu, pinfo)
  local v = pdu.v
  local from = st.client_id or UNKNOWN_SENDER
  local server = st.server_ep or "?"
  local trace = { key = from .. "." .. num(pdu.id) .. "@" .. server, req = packet.number, req_t = pinfo.rel_ts }
  state.trace[ex] = trace
  local wait = server .. "\0" .. v[TRACE.to] .. "\0" .. from .. "\0" .. v["=" .. TRACE.text]
  local q = state.pending[wait]
  if q == nil then
    q = { first = 1, last = 0 }
    state.pending[wait] = q
  end
  q.last = q.last + 1
  q[q.last] = trace
end

local function trace_indication(st, ex, pdu, pinfo)
  if st.client_id == nil then
    return
  end
  local v = pdu.v
  local head = (st.server_ep or "?") .. "\0" .. st.client_id .. "\0"
  local tail = "\0" .. v["=" .. TRACE.text]
  local q = state.pending[head .. v[TRACE.from] .. tail]
  if q == nil or q.first > q.last then
    q = state.pending[head .. UNKNOWN_SENDER .. tail]
  end
  if q == nil or q.first > q.last then
    return
  end
  local trace = q[q.first]
  q[q.first] = nil
  q.first = q.first + 1
  trace.ind, trace.ind_t, trace.delivery = packet.number, pinfo.rel_ts, pdu.id
  state.trace[ex] = trace
end

local function trace_answer(trace, kind, pinfo)
  if kind == TRACE.ack then
    trace.ack, trace.ack_t = packet.number, pinfo.rel_ts
  else
    trace.resp, trace.resp_t = packet.number, pinfo.rel_ts
  end
end

local function open_exchange(st, kind, key, pinfo)
  local ex = state.n + 1
  state.n = ex
  ex_set(ex, "kind", kind * KEYS + key)
  ex_set(ex, "ask", packet.number)
  -- "answer" stays unset until the answer comes.
  ex_set(ex, "time", nanoseconds(pinfo.rel_ts))
  st.open[key] = ex
  remember(packet.number, ex)
  return ex
end

-- First pass: learn the connection, open and close exchanges, follow messages.
local function record(st, kind, pdu, pinfo)
  local sender = sender_of(st, kind, pdu.c, pinfo)
  if sender ~= nil and st.server_ep == nil then
    st.server_ep = (sender == SERVER) and packet.src or packet.dst
  end
  local v = pdu.v
  if kind == TRACE.hello then
    st.hello = true
  end
  if kind == TRACE.hello and v ~= nil then
    st.client_id, st.server = v[TRACE.client_id], v["=" .. TRACE.server]
    st.client_num = tonumber(st.client_id)
  end
  local opener = ASKS[kind]
  if opener ~= nil and (opener == CLIENT or pdu.id ~= 0) then
    local ex = open_exchange(st, kind, pdu.id * 2 + opener, pinfo)
    if v ~= nil and kind == TRACE.request then
      trace_request(st, ex, pdu, pinfo)
    elseif v ~= nil and kind == TRACE.indication then
      trace_indication(st, ex, pdu, pinfo)
    end
    return
  end
  local asks = ANSWERS[kind]
  if asks == nil then
    return
  end
  for side = CLIENT, SERVER do
    if sender == nil or side ~= sender then
      local key = pdu.id * 2 + side
      local ex = st.open[key]
      if ex ~= nil then
        local ask_kind = kind_of(ex)
        if asks[ask_kind] or (asks.any_request and ASKS[ask_kind] == CLIENT) then
          ex_set(ex, "answer", packet.number)
          ex_set(ex, "time", nanoseconds(pinfo.rel_ts) - ex_get(ex, "time"))
          st.open[key] = nil
          remember(packet.number, ex)
          local trace = state.trace[ex]
          if trace ~= nil then
            trace_answer(trace, kind, pinfo)
          end
          return
        end
      end
    end
  end
end

local function nstime(seconds)
  local s = math.floor(seconds)
  return NSTime.new(s, math.floor((seconds - s) * 1e9 + 0.5))
end

local function add_generated(tree, field, value)
  local item = tree:add(field, value)
  item:set_generated()
  return item
end

local function show_trace(root, trace)
  local sub = root:add(F["trace"])
  sub:set_generated()
  sub:append_text(": " .. trace.key)
  add_generated(sub, F["trace.key"], trace.key)
  add_generated(sub, F["trace.request_in"], trace.req)
  if trace.ind ~= nil then
    add_generated(sub, F["trace.indication_in"], trace.ind)
    add_generated(sub, F["trace.delivery_id"], trace.delivery)
    add_generated(sub, F["trace.forward_time"], nstime(trace.ind_t - trace.req_t))
  end
  if trace.ack ~= nil then
    add_generated(sub, F["trace.ack_in"], trace.ack)
  end
  if trace.resp ~= nil then
    add_generated(sub, F["trace.response_in"], trace.resp)
    add_generated(sub, F["trace.time"], nstime(trace.resp_t - trace.req_t))
  end
end

-- Every pass: the connection's facts, the links recorded for this PDU. Returns the
-- exchange this PDU answers, if any.
local function show(root, st, kind, pdu, pinfo)
  if st.client_id ~= nil then
    add_generated(root, F["conn.client_id"], st.client_num)
  end
  if st.server ~= nil then
    add_generated(root, F["conn.server"], st.server)
  end
  local opener = ASKS[kind]
  if opener ~= nil then
    local ex = lookup(packet.number, pdu.id, opener, false)
    if ex == nil then
      return nil
    end
    local answer = ex_get(ex, "answer")
    if answer ~= 0 then
      add_generated(root, F["response_in"], answer)
    elseif packet.visited then
      root:add_proto_expert_info(EXPERT.no_response)
    end
    if state.trace[ex] ~= nil then
      show_trace(root, state.trace[ex])
    end
    return nil
  end
  if ANSWERS[kind] == nil then
    return nil
  end
  local ex = lookup(packet.number, pdu.id, nil, true)
  if ex == nil then
    return nil
  end
  add_generated(root, F["request_in"], ex_get(ex, "ask"))
  add_generated(root, F["response_time"], nstime(ex_get(ex, "time") / 1e9))
  if state.trace[ex] ~= nil then
    show_trace(root, state.trace[ex])
  end
  return ex
end

-- ---------------------------------------------------------------------------
-- Statistics: what the PDUs of the frame being dissected were, for the tap below.
-- ---------------------------------------------------------------------------

local tapped = { number = -1, n = 0, pdus = {} }
local stats_wanted = false

local function tap_pdu(pinfo, kind, pdu, ex)
  if tapped.number ~= packet.number then
    tapped.number, tapped.n = packet.number, 0
  end
  tapped.n = tapped.n + 1
  local v = pdu.v or {}
  local rt_kind, rt
  if ex ~= nil then
    rt_kind, rt = kind_of(ex), ex_get(ex, "time") / 1e9
  end
  tapped.pdus[tapped.n] = { kind = kind, status = v["@status"], error = v["@error"], rt_kind = rt_kind, rt = rt }
end

-- ---------------------------------------------------------------------------
-- PDUs: resynchronisation on the magic, the Info column, reassembly.
-- ---------------------------------------------------------------------------

-- Info column: the first PDU of a packet sets it, later ones append. A later PDU of
-- the same packet finds the column ending with what the earlier ones wrote; a packet
-- dissected again (the GUI) starts from the column TCP wrote, so it sets it again.
-- Only that case reads the column back (a dear call).
--
-- Wireshark cuts the column at 4,096 bytes, and a cut column no longer ends with what
-- was written: past INFO_LIMIT bytes the column becomes a summary of the packet's
-- PDUs instead, the first and the last and their count ("T response #1 … #100, 100
-- frames"), rewritten as more PDUs come.
local INFO_LIMIT = 2000
local info_state = { number = -1, text = "", n = 0, first = "", head = nil, summary = false }

local function info_summary(pdu, text)
  local last = text
  if pdu ~= nil and pdu.prefix ~= nil then
    last = pdu.prefix
    if pdu.head == info_state.head and pdu.tag ~= nil then
      last = pdu.tag
    end
  end
  return info_state.first .. " \226\128\166 " .. last .. ", " .. info_state.n .. " frames"
end

local function set_info(pinfo, text, pdu)
  local number = packet.number
  if info_state.number == number then
    local col = packet.cols.info
    local shown, last = tostring(col), info_state.text
    if #shown >= #last and string.sub(shown, -#last) == last then
      info_state.n = info_state.n + 1
      if info_state.summary or #last + 2 + #text > INFO_LIMIT then
        info_state.summary = true
        info_state.text = info_summary(pdu, text)
        packet.cols.info = info_state.text
        return
      end
      col:append(", " .. text)
      info_state.text = last .. ", " .. text
      return
    end
  end
  packet.cols.info = text
  info_state.number, info_state.text, info_state.n, info_state.summary = number, text, 1, false
  info_state.first, info_state.head = text, nil
  if pdu ~= nil and pdu.prefix ~= nil then
    info_state.first, info_state.head = pdu.prefix, pdu.head
  end
end

-- Whether the bytes s from offset on (from 0) can start a TNLM header: the magic, this
-- version, a known type letter and class, a zero reserved byte and a length within the
-- maximum payload, as far as the bytes go (a header cut off by the end of s is judged
-- on what is there). Only such a header ends a resynchronisation: "TNLM" in a text is
-- not a frame.
local function plausible(s, offset)
  local avail = #s - offset
  local m = #K.magic
  if avail < m then
    return string.sub(s, offset + 1) == string.sub(K.magic, 1, avail)
  end
  if string.sub(s, offset + 1, offset + m) ~= K.magic then
    return false
  end
  local function value(h)
    if avail < h.offset + h.size then
      return nil
    end
    return le_uint(s, offset + h.offset, h.size)
  end
  local version, t, c, reserved, length = value(H.version), value(H.type), value(H.class), value(H.reserved),
    value(H.length)
  return (version == nil or version == K.version) and (t == nil or TYPE_NAMES[t] ~= nil)
    and (c == nil or CLASS_NAMES[c] ~= nil) and (reserved == nil or reserved == 0)
    and (length == nil or length <= max_payload())
end

-- Where the next plausible header starts in the bytes s from offset `from` on (offsets
-- from 0), or nil. With `partial`, a header cut off by the end of the data counts too
-- (the rest may come in the next segment); without, only a whole header counts.
local function find_header(s, from, partial)
  local len = #s
  local at = from
  while at < len do
    local hit = string.find(s, K.magic, at + 1, true)
    if hit == nil then
      break
    end
    hit = hit - 1
    if (partial or len - hit >= HLEN) and plausible(s, hit) then
      return hit
    end
    at = hit + 1
  end
  if partial then
    for k = #K.magic - 1, 1, -1 do
      if len - from >= k and string.sub(s, -k) == string.sub(K.magic, 1, k) then
        return len - k
      end
    end
  end
  return nil
end

-- When Wireshark builds no tree for a pass (tshark's first pass of two without a
-- read filter, the GUI filling its packet list), the root handed to a Lua dissector
-- has no item, so no text. Items added to it would be thrown away, yet each call
-- still costs a TreeItem; this stand-in takes the same calls and does nothing, so
-- the PDUs are still decoded for the Info column, the tracking and the statistics.
local NO_TREE = {}
local function no_tree()
  return NO_TREE
end
for _, method in ipairs({ "add", "add_le", "append_text", "set_text", "set_len", "set_generated",
  "add_proto_expert_info" }) do
  NO_TREE[method] = no_tree
end
-- Without a tree, the TvbRanges made for items are not needed either: this stand-in
-- for the Tvb gives a stand-in range (whose :tvb() is the stand-in Tvb again). The
-- bytes themselves are read from the segment's string.
local NO_TVB = {}
local NO_RANGE = {
  tvb = function()
    return NO_TVB
  end,
}
setmetatable(NO_TVB, {
  __call = function()
    return NO_RANGE
  end,
})

local function track(root, pdu, pinfo)
  local kind = pdu.t * 4 + pdu.c
  if root == NO_TREE and packet.visited and not stats_wanted then
    -- Nothing to record, show or count.
    return
  end
  local st = conn_of(pinfo)
  if not packet.visited then
    if kind == TRACE.hello and st.hello then
      -- A second hello between the same endpoints: the ports were used again.
      st = new_conn(packet.key)
    end
    remember_conn(st)
    record(st, kind, pdu, pinfo)
  end
  local ex
  if root ~= NO_TREE then
    ex = show(root, st, kind, pdu, pinfo)
  elseif stats_wanted and ANSWERS[kind] ~= nil then
    -- Without a tree, only the statistics want the exchange this PDU answers.
    ex = lookup(packet.number, pdu.id, nil, true)
  end
  if stats_wanted then
    tap_pdu(pinfo, kind, pdu, ex)
  end
end

local function dissect_one(tvb, pinfo, tree, raw)
  local root = tree:add(tnlm, tvb())
  local pdu = {}
  local ok, info = pcall(dissect_frame, tvb, root, pdu, raw)
  if not ok then
    root:add_proto_expert_info(EXPERT.malformed, "Undecodable frame: " .. tostring(info))
    info = "undecodable frame"
  end
  if pdu.t ~= nil then
    local tracked, err = pcall(track, root, pdu, pinfo)
    if not tracked then
      root:add_proto_expert_info(EXPERT.malformed, "Tracking failed: " .. tostring(err))
    end
  end
  root:append_text(", " .. info)
  set_info(pinfo, info, pdu)
end

-- Dissects one PDU: tvb, and its bytes raw.
local function dissect_pdu(tvb, pinfo, tree, raw)
  local avail = #raw
  local magic = K.magic
  if avail >= #magic and string.sub(raw, 1, #magic) ~= magic then
    -- Bytes before the next magic (garbage, or the tail of a frame whose start
    -- was not captured): shown as data, then the frame after them.
    local at = find_header(raw, 1, false)
    if at ~= nil then
      local root = tree:add(tnlm, tvb(0, at))
      root:add(F.data, tvb(0, at)):add_proto_expert_info(EXPERT.bad_magic,
        "Bad magic: " .. at .. " bytes skipped up to the next TNLM header")
      local info = "bad magic, " .. at .. " bytes skipped"
      root:append_text(", " .. info)
      set_info(pinfo, info)
      dissect_one(tvb(at, avail - at):tvb(), pinfo, tree, string.sub(raw, at + 1))
      return avail
    end
  end
  dissect_one(tvb, pinfo, tree, raw)
  return avail
end

-- Whether the bytes s hold the magic at offset.
local function magic_at(s, offset)
  return string.sub(s, offset + H.magic.offset + 1, offset + H.magic.offset + H.magic.size) == K.magic
end

-- The length of the PDU whose header is at offset of the bytes s (a whole header is
-- there), or nil when the header is not valid.
local function frame_length(s, offset)
  if not magic_at(s, offset) then
    return nil
  end
  if le_uint(s, offset + H.version.offset, 1) ~= K.version then
    return nil
  end
  local length = le_uint(s, offset + H.length.offset, 4)
  if length > max_payload() then
    return nil
  end
  return HLEN + length
end

-- The whole PDU's length at offset, from its header (at least a header's length).
-- Bytes that do not start with the magic form a PDU up to the next magic; when that
-- is shorter than a header, the frame after it joins the same PDU.
local function pdu_length(s, offset)
  local avail = #s - offset
  if avail < HLEN then
    return HLEN
  end
  local length = frame_length(s, offset)
  if length ~= nil then
    return length
  end
  if magic_at(s, offset) then
    return avail
  end
  local at = find_header(s, offset + 1, true)
  if at == nil then
    return avail
  end
  local skip = at - offset
  if skip >= HLEN then
    return skip
  end
  if #s - at < HLEN then
    return skip + HLEN
  end
  local length = frame_length(s, at)
  if length == nil then
    return math.max(HLEN, avail)
  end
  return skip + length
end

-- The fast path without a tree: one PDU whose bytes are raw, a whole, valid frame
-- of a known message (anything else returns nil, and the full path, which explains
-- what is wrong, runs instead). Decodes the header with plain string reads and the
-- payload with the stand-in tree, fills pdu and returns the Info text.
local HEADS = {}
local FAST_V = {}
local FAST_PDU = {}

-- decode_fields without a tree: the same checks, the same values (with `display`;
-- a list's entries are only checked, as only their count is shown without a tree).
local function fast_fields(s, at, limit, fields, v, display)
  for _, fd in ipairs(fields) do
    local wire, left = fd.wire, limit - at
    if wire == "uint" or wire == "status" or wire == "error" then
      if left < fd.size then
        return nil
      end
      if display then
        local value = le_uint(s, at, fd.size)
        if wire == "uint" then
          v[fd.name] = num(value)
        else
          local name = ((wire == "status") and STATUS_NAMES or ERROR_NAMES)[value]
          if name == nil then
            name = "Unknown (" .. num(value) .. ")"
          end
          v[fd.name], v["#" .. wire], v["@" .. wire] = name, value, name
        end
      end
      at = at + fd.size
    elseif wire == "string" then
      if left < 8 then
        return nil
      end
      local len = le_uint(s, at, 4)
      if le_uint(s, at + 4, 4) ~= 0 or len > left - 8 then
        return nil
      end
      local raw = string.sub(s, at + 9, at + 8 + len)
      if not valid_utf8(raw) then
        return nil
      end
      if display then
        v[fd.name], v[fd.raw] = display_text(raw), raw
      end
      at = at + 8 + len
    elseif wire == "ip" then
      if left < 4 then
        return nil
      end
      local size = IP_FAMILY_SIZES[le_uint(s, at, 4)]
      if size == nil or left < 4 + size then
        return nil
      end
      if display then
        local raw = string.sub(s, at + 5, at + 4 + size)
        v[fd.name] = (size == 4) and ipv4_text(raw) or ipv6_text(raw)
      end
      at = at + 4 + size
    elseif wire == "list" then
      if left < 8 then
        return nil
      end
      local count = le_uint(s, at, 4)
      if le_uint(s, at + 4, 4) ~= 0 or count > (left - 8) / fd.min_size then
        return nil
      end
      at = at + 8
      for _ = 1, count do
        at = fast_fields(s, at, limit, fd.fields, nil, false)
        if at == nil then
          return nil
        end
      end
      if display then
        if count == 1 then
          v[fd.name] = "1 " .. string.lower(fd.label)
        else
          v[fd.name] = num(count) .. " " .. string.lower(fd.label) .. "s"
        end
      end
    else
      return nil
    end
  end
  return at
end

local function fast_frame(raw, pdu)
  if #raw < HLEN or string.sub(raw, H.magic.offset + 1, H.magic.offset + H.magic.size) ~= K.magic then
    return nil
  end
  if le_uint(raw, H.version.offset, H.version.size) ~= K.version
    or le_uint(raw, H.reserved.offset, H.reserved.size) ~= 0 then
    return nil
  end
  local length = le_uint(raw, H.length.offset, H.length.size)
  local limit = HLEN + length
  if length > max_payload_now or #raw < limit then
    return nil
  end
  local t, c = le_uint(raw, H.type.offset, H.type.size), le_uint(raw, H.class.offset, H.class.size)
  local message = MESSAGES[t] and MESSAGES[t][c]
  if message == nil then
    return nil
  end
  -- One values table per kind, reused: a kind's decoding sets every key it has, and
  -- nothing keeps the table (a table per frame only fed the garbage collector).
  local kind = t * 4 + c
  local v = FAST_V[kind]
  if v == nil then
    v = {}
    FAST_V[kind] = v
  end
  if length == 0 then
    if #message.fields ~= 0 then
      return nil
    end
  elseif fast_fields(raw, HLEN, limit, message.fields, v, true) ~= limit then
    return nil
  end
  local id = le_uint(raw, H.request_id.offset, H.request_id.size)
  local head = HEADS[kind]
  if head == nil then
    head = type_letter(t) .. " " .. CLASS_NAMES[c]
    HEADS[kind] = head
  end
  pdu.t, pdu.c, pdu.id, pdu.v, pdu.head, pdu.tag = t, c, id, v, head, nil
  local prefix = head
  if c ~= CLASS.indication or id ~= 0 then
    pdu.tag = "#" .. num(id)
    prefix = head .. " " .. pdu.tag
  end
  pdu.prefix = prefix
  if message.summary then
    return prefix .. message.summary(v)
  end
  return prefix
end

-- One PDU without a tree; false when the full path must run.
local function fast_one(pinfo, raw)
  local pdu = FAST_PDU
  local ok, info = pcall(fast_frame, raw, pdu)
  if not ok or info == nil then
    return false
  end
  pcall(track, NO_TREE, pdu, pinfo)
  set_info(pinfo, info, pdu)
  return true
end

-- Splits the segment into PDUs, as Wireshark's tcp_dissect_pdus does, without its cost
-- (a Lua call back for each length and PDU, and a new Tvb for each): a PDU that
-- continues in the next segment is left to TCP's reassembly (desegment_offset and
-- desegment_len), or, without reassembly, dissected as far as it was captured.
function tnlm.dissector(tvb, pinfo, tree)
  packet.number, packet.visited = pinfo.number, pinfo.visited
  local pdu_tvb = tvb
  if tree.text == nil then
    tree, pdu_tvb = NO_TREE, NO_TVB
  end
  local cols = pinfo.cols
  packet.cols = cols
  cols.protocol = "TNLM"
  -- The segment's bytes, read once: lengths and values are decoded from this string.
  local data = tvb:raw()
  local len = #data
  local offset = 0
  while offset < len do
    local avail = len - offset
    local need = pdu_length(data, offset)
    if avail < need then
      if pinfo.can_desegment > 0 or packet.heuristic then
        pinfo.desegment_offset = offset
        if avail < HLEN then
          need = DESEGMENT_ONE_MORE_SEGMENT
        else
          need = need - avail
        end
        pinfo.desegment_len = need
        return len
      end
      need = avail
    end
    if tree == NO_TREE then
      local raw = data
      if offset ~= 0 or need ~= len then
        raw = string.sub(data, offset + 1, offset + need)
      end
      if not fast_one(pinfo, raw) then
        dissect_pdu(NO_TVB, pinfo, tree, raw)
      end
    elseif offset == 0 and need == len then
      dissect_pdu(pdu_tvb, pinfo, tree, data)
    else
      dissect_pdu(pdu_tvb(offset, need):tvb(), pinfo, tree, string.sub(data, offset + 1, offset + need))
    end
    offset = offset + need
  end
  return len
end

-- The heuristic's record: connection key -> the frame of its first segment with data.
local heuristic_first = {}

function tnlm.init()
  reset_state()
  read_max_payload()
  info_state.number, info_state.text, info_state.n, info_state.summary = -1, "", 0, false
  heuristic_first = {}
  endpoint_cache = {}
  packet.at = -1
  tapped.number = -1
end

-- Heuristic for other ports: it claims a connection only at its start. TCP offers it
-- the segments of every connection no dissector has claimed; it takes one whose first
-- segment with data (the first it is offered between these endpoints) starts with a
-- plausible header, or as much of one as the segment holds (a first segment of 3 bytes
-- "TNL" too: the dissector then asks TCP for the next one), or, later on, a server's
-- hello, which is always the first frame of a connection (the same ports used again).
-- A foreign connection whose middle happens to start with the magic is not claimed.
local function heuristic(tvb, pinfo, tree)
  packet.number, packet.visited = pinfo.number, pinfo.visited
  local avail = tvb:len()
  if avail == 0 then
    return false
  end
  local head = tvb:raw(0, math.min(avail, HLEN))
  read_endpoints(pinfo)
  local first = heuristic_first[packet.key]
  if first == nil and not packet.visited then
    first = packet.number
    heuristic_first[packet.key] = first
  end
  if not plausible(head, 0) then
    return false
  end
  if first ~= packet.number then
    -- Not the connection's first segment: only a hello starts a new one.
    if #head < HLEN or le_uint(head, H.type.offset, H.type.size) * 4 + le_uint(head, H.class.offset,
      H.class.size) ~= TRACE.hello then
      return false
    end
  end
  pinfo.conversation = tnlm
  -- Wireshark 4.0 to 4.4 hand a heuristic can_desegment 0, yet TCP takes the
  -- desegment request all the same: without it, a first segment shorter than its frame
  -- (3 bytes of a hello) would be lost.
  packet.heuristic = true
  local ok, err = pcall(tnlm.dissector, tvb, pinfo, tree)
  packet.heuristic = false
  if not ok then
    error(err)
  end
  return true
end
tnlm:register_heuristic("tcp", heuristic)

-- The ports preference: re-register when it changes.
local tcp_port_table = DissectorTable.get("tcp.port")
local registered_ports = ""
local function register_ports()
  local ports = tostring(tnlm.prefs.ports or "")
  if ports == registered_ports then
    return
  end
  if registered_ports ~= "" then
    tcp_port_table:remove(registered_ports, tnlm)
  end
  if ports ~= "" then
    tcp_port_table:add(ports, tnlm)
  end
  registered_ports = ports
end
tnlm.prefs_changed = function()
  read_max_payload()
  register_ports()
end
register_ports()

-- ---------------------------------------------------------------------------
-- Statistics: `tshark -z tnlm,stat` and Statistics > TNLM in the GUI.
-- ---------------------------------------------------------------------------

local function kind_name(kind)
  local c = kind % 4
  return type_letter((kind - c) / 4) .. " " .. (CLASS_NAMES[c] or ("class " .. c))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    if type(a) == "number" and type(b) == "number" then
      return a < b
    end
    return tostring(a) < tostring(b)
  end)
  return keys
end

-- Counts what the tap saw; `text()` renders it.
local function new_counts()
  local s = { kinds = {}, statuses = {}, errors = {}, times = {} }
  function s.add(p)
    s.kinds[p.kind] = (s.kinds[p.kind] or 0) + 1
    if p.status ~= nil then s.statuses[p.status] = (s.statuses[p.status] or 0) + 1 end
    if p.error ~= nil then s.errors[p.error] = (s.errors[p.error] or 0) + 1 end
    if p.rt_kind ~= nil then
      local t = s.times[p.rt_kind]
      if t == nil then
        t = { n = 0, sum = 0, min = p.rt, max = p.rt }
        s.times[p.rt_kind] = t
      end
      t.n, t.sum = t.n + 1, t.sum + p.rt
      if p.rt < t.min then t.min = p.rt end
      if p.rt > t.max then t.max = p.rt end
    end
  end
  function s.text()
    local unanswered = {}
    for _, st in ipairs(state.conns) do
      for _, ex in pairs(st.open) do
        local kind = kind_of(ex)
        unanswered[kind] = (unanswered[kind] or 0) + 1
        if s.times[kind] == nil then s.times[kind] = { n = 0 } end
      end
    end
    local out = { "TNLM statistics", "", string.format("%-24s %8s", "TNLM frames by type", "count") }
    for _, k in ipairs(sorted_keys(s.kinds)) do
      out[#out + 1] = string.format("  %-22s %8d", kind_name(k), s.kinds[k])
    end
    out[#out + 1] = ""
    out[#out + 1] = string.format("%-24s %8s", "Delivery status", "count")
    for _, k in ipairs(sorted_keys(s.statuses)) do
      out[#out + 1] = string.format("  %-22s %8d", k, s.statuses[k])
    end
    out[#out + 1] = ""
    out[#out + 1] = string.format("%-24s %8s", "Error code", "count")
    for _, k in ipairs(sorted_keys(s.errors)) do
      out[#out + 1] = string.format("  %-22s %8d", k, s.errors[k])
    end
    out[#out + 1] = ""
    out[#out + 1] = string.format("%-24s %8s %8s %8s %8s %10s", "Response time (ms)", "answered", "min", "avg",
      "max", "unanswered")
    for _, k in ipairs(sorted_keys(s.times)) do
      local t = s.times[k]
      if t.n > 0 then
        out[#out + 1] = string.format("  %-22s %8d %8.3f %8.3f %8.3f %10d", kind_name(k), t.n, t.min * 1000,
          t.sum / t.n * 1000, t.max * 1000, unanswered[k] or 0)
      else
        out[#out + 1] = string.format("  %-22s %8d %8s %8s %8s %10d", kind_name(k), 0, "-", "-", "-",
          unanswered[k] or 0)
      end
    end
    return table.concat(out, "\n") .. "\n"
  end
  return s
end

-- A tap on frames with TNLM; `show(text)` receives the report on every draw.
local function stats_listener(show_text)
  stats_wanted = true
  local counts = new_counts()
  local tap = Listener.new("frame", "tnlm")
  function tap.packet(pinfo)
    if tapped.number == pinfo.number then
      for i = 1, tapped.n do
        counts.add(tapped.pdus[i])
      end
    end
  end
  function tap.draw()
    show_text(counts.text())
  end
  function tap.reset()
    counts = new_counts()
  end
  return tap
end

-- The statistics window of the GUI: a text window fed by its own tap.
local function stats_window()
  local window = TextWindow.new("TNLM statistics")
  local tap = stats_listener(function(text) window:set(text) end)
  window:set_atclose(function()
    tap:remove()
  end)
  return window
end

local gui = gui_enabled ~= nil and gui_enabled()

-- `-z tnlm,stat`: printed by tshark at the end; in the GUI, the window opens.
if register_stat_cmd_arg ~= nil then
  register_stat_cmd_arg("tnlm,stat", function()
    if gui then
      -- Wireshark has read the file by now: count it again for the new tap.
      stats_window()
      retap_packets()
      return
    end
    stats_listener(function(text)
      io.write("===================================================================\n", text,
        "===================================================================\n")
    end)
  end)
end

if gui then
  register_menu("TNLM", function()
    stats_window()
    retap_packets()
  end, MENU_STAT_UNSORTED)
end
