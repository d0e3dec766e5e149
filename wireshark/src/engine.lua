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
-- Largest PDU length handed back to Wireshark (it is stored in a C int).
local MAX_PDU = 2147483647

tnlm.prefs.port = Pref.uint("TCP port", K.default_port, "TCP port on which TNLM is decoded (0: heuristic only)")
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
  s = string.gsub(s, "[\0-\31\127]", " ")
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

local function type_letter(t)
  if t >= 0x21 and t <= 0x7E then
    return string.char(t)
  end
  return string.format("0x%02x", t)
end

-- Reads `fields` from tvb[at, limit) into tree. Returns the offset after them and the
-- table of display values by field name, or nil and why not. Every read is
-- bounds-checked first, so no read ever throws.
local decode_fields

local function decode_field(tvb, tree, at, limit, fd, v)
  local left = limit - at
  if fd.wire == "uint" or fd.wire == "status" or fd.wire == "error" then
    if left < fd.size then
      return nil, fd.name .. ": needs " .. fd.size .. " bytes, " .. left .. " left"
    end
    local value = tvb(at, fd.size):le_uint()
    local item = tree:add_le(fd.f, tvb(at, fd.size))
    if fd.wire == "uint" then
      v[fd.name] = num(value)
    else
      local names = (fd.wire == "status") and STATUS_NAMES or ERROR_NAMES
      local name = names[value]
      if name == nil then
        return nil, "unknown " .. fd.wire .. " code " .. num(value)
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
    local len = tvb(at, 4):le_uint()
    local high = tvb(at + 4, 4):le_uint()
    if high ~= 0 or len > left - 8 then
      return nil, fd.name .. ": string length exceeds the " .. (left - 8) .. " bytes left"
    end
    local raw = ""
    if len > 0 then
      raw = tvb(at + 8, len):raw()
    end
    if not valid_utf8(raw) then
      return nil, fd.name .. ": not valid UTF-8"
    end
    local item = tree:add(fd.f, tvb(at, 8 + len), raw)
    item:add_le(F["string.length"], tvb(at, 8))
    v[fd.name] = display_text(raw)
    return at + 8 + len, item
  elseif fd.wire == "ip" then
    if left < 4 then
      return nil, fd.name .. ": needs a 4-byte address family, " .. left .. " bytes left"
    end
    local family = tvb(at, 4):le_uint()
    local size = IP_FAMILY_SIZES[family]
    if size == nil then
      return nil, fd.name .. ": unknown address family " .. num(family)
    end
    if left < 4 + size then
      return nil, fd.name .. ": needs " .. (4 + size) .. " bytes, " .. left .. " left"
    end
    local raw = tvb(at + 4, size):raw()
    local item
    if size == 4 then
      item = tree:add(fd.f, tvb(at + 4, size))
      v[fd.name] = ipv4_text(raw)
    else
      item = tree:add(fd.f6, tvb(at + 4, size))
      v[fd.name] = ipv6_text(raw)
    end
    item:add_le(fd.family, tvb(at, 4))
    return at + 4 + size, item
  elseif fd.wire == "list" then
    if left < 8 then
      return nil, fd.name .. ": needs an 8-byte count, " .. left .. " bytes left"
    end
    local count = tvb(at, 4):le_uint()
    local high = tvb(at + 4, 4):le_uint()
    if high ~= 0 or count > (left - 8) / fd.min_size then
      return nil, fd.name .. ": count exceeds what the " .. (left - 8) .. " bytes left can hold"
    end
    local list_item = tree:add_le(fd.f, tvb(at, 8))
    local pos = at + 8
    for i = 1, count do
      local sub = list_item:add(fd.item, tvb(pos, limit - pos))
      local sv = {}
      local after, err = decode_fields(tvb, sub, pos, limit, fd.fields, sv)
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

decode_fields = function(tvb, tree, at, limit, fields, v)
  for _, fd in ipairs(fields) do
    local after, err = decode_field(tvb, tree, at, limit, fd, v)
    if after == nil then
      return nil, err
    end
    at = after
  end
  return at
end

local function max_payload()
  local max = tnlm.prefs.max_payload
  if max > MAX_PDU - HLEN then
    max = MAX_PDU - HLEN
  end
  return max
end

-- Dissects one PDU (tvb starts at its magic). Returns the Info text.
local function dissect_frame(tvb, pinfo, root)
  local avail = tvb:len()
  if avail < HLEN then
    local item = root:add(F.data, tvb(0, avail))
    item:add_proto_expert_info(EXPERT.malformed, "Truncated header: " .. avail .. " of " .. HLEN .. " bytes")
    return "truncated frame"
  end
  local magic = tvb(H.magic.offset, H.magic.size):raw()
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
      items[h.name] = header:add(F[h.name], range)
    else
      items[h.name] = header:add_le(F[h.name], range)
      value[h.name] = range:le_uint()
    end
  end
  local t, c, id, length = value.type, value.class, value.request_id, value.length
  local prefix = type_letter(t) .. " " .. (CLASS_NAMES[c] or ("class " .. c))
  if c ~= CLASS.indication then
    prefix = prefix .. " #" .. num(id)
  end
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
      return prefix
    end
    items.length:add_proto_expert_info(EXPERT.malformed, "Malformed " .. message.payload .. ": empty payload")
    return prefix .. " [malformed " .. message.payload .. "]"
  end
  local payload = root:add(F.payload, tvb(HLEN, length))
  payload:append_text(": " .. message.payload)
  local v = {}
  local after, err = decode_fields(tvb, payload, HLEN, limit, message.fields, v)
  if after == nil then
    payload:add_proto_expert_info(EXPERT.malformed, "Malformed " .. message.payload .. ": " .. err)
    return prefix .. " [malformed " .. message.payload .. "]"
  end
  if after < limit then
    payload:add_proto_expert_info(EXPERT.malformed,
      "Malformed " .. message.payload .. ": " .. (limit - after) .. " trailing bytes")
    return prefix .. " [malformed " .. message.payload .. "]"
  end
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

-- Info column: the first PDU of a packet sets it, later ones append.
local info_state = { number = -1, text = nil }
local function set_info(pinfo, text)
  local col = pinfo.cols.info
  if info_state.number == pinfo.number and info_state.text == tostring(col) then
    col:append(", " .. text)
  else
    col:set(text)
  end
  info_state.number = pinfo.number
  info_state.text = tostring(col)
end

local function dissect_pdu(tvb, pinfo, tree)
  pinfo.cols.protocol = "TNLM"
  local root = tree:add(tnlm, tvb())
  local ok, info = pcall(dissect_frame, tvb, pinfo, root)
  if not ok then
    root:add_proto_expert_info(EXPERT.malformed, "Undecodable frame: " .. tostring(info))
    info = "undecodable frame"
  end
  root:append_text(", " .. info)
  set_info(pinfo, info)
  return tvb:len()
end

-- The whole PDU's length, from its header (Wireshark passes the whole tvb and the offset).
local function pdu_length(tvb, pinfo, offset)
  local avail = tvb:len() - offset
  if avail < HLEN then
    -- Only without reassembly: the PDU dissector reports the truncated header.
    return HLEN
  end
  if tvb(offset + H.magic.offset, H.magic.size):raw() ~= K.magic then
    return avail
  end
  if tvb(offset + H.version.offset, 1):le_uint() ~= K.version then
    return avail
  end
  local length = tvb(offset + H.length.offset, 4):le_uint()
  if length > max_payload() then
    return avail
  end
  return HLEN + length
end

function tnlm.dissector(tvb, pinfo, tree)
  dissect_tcp_pdus(tvb, tree, HLEN, pdu_length, dissect_pdu, true)
  return tvb:len()
end

-- Heuristic for other ports: the stream must start with the magic and our version.
local function heuristic(tvb, pinfo, tree)
  local avail = tvb:len()
  if avail < H.magic.size or tvb(H.magic.offset, H.magic.size):raw() ~= K.magic then
    return false
  end
  if avail > H.version.offset and tvb(H.version.offset, 1):le_uint() ~= K.version then
    return false
  end
  pinfo.conversation = tnlm
  tnlm.dissector(tvb, pinfo, tree)
  return true
end
tnlm:register_heuristic("tcp", heuristic)

-- The port preference: re-register when it changes.
local tcp_port_table = DissectorTable.get("tcp.port")
local registered_port = 0
local function register_port()
  local port = tnlm.prefs.port
  if port == registered_port then
    return
  end
  if registered_port ~= 0 then
    tcp_port_table:remove(registered_port, tnlm)
  end
  if port ~= 0 then
    tcp_port_table:add(port, tnlm)
  end
  registered_port = port
end
tnlm.prefs_changed = register_port
register_port()
