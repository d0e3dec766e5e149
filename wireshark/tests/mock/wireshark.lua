-- A small mock of the Wireshark Lua API (4.x), enough to load and run tnlm.lua:
-- Proto, ProtoField.*, ProtoExpert, Pref, Tvb/TvbRange (real byte semantics and bounds
-- errors), TreeItem (records every item), DissectorTable, Pinfo with columns and
-- desegment_offset/desegment_len, and TCP's desegmentation in the harness below.
--
-- Helpers provided by the Rust test (globals): __u64_le(bytes) -> decimal text,
-- __ipv6(bytes) -> text as Rust's Ipv6Addr shows it.
--
-- The functions that exist in only one of the Lua versions Wireshark uses are removed,
-- so a dissector that relies on them fails here as it would in some Wireshark.

string.pack, string.unpack, string.packsize = nil, nil, nil
utf8, bit32 = nil, nil
math.type, math.pow, math.ult = nil, nil, nil
loadstring, setfenv, getfenv, unpack = nil, nil, nil, nil

local M = {
  protos = {},
  fields = {},       -- abbrev -> ProtoField (registered)
  tables = {},       -- name -> DissectorTable
  heuristics = {},   -- list name -> { {proto, fn}, ... }
  pinfo = nil,       -- the Pinfo of the packet being dissected
  errors = {},       -- Lua errors and bounds errors of the packet being dissected
}
_G.__mock = M

local function fail(msg)
  error(msg, 3)
end

local function class_of(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt and mt.__class
end

-- Constants ------------------------------------------------------------------

base = { NONE = 0, DEC = 1, HEX = 2, OCT = 3, DEC_HEX = 4, HEX_DEC = 5, UNIT_STRING = 0x1000,
  ASCII = 0, UNICODE = 7, DOT = 8, DASH = 9, COLON = 10, SPACE = 11 }
ENC_BIG_ENDIAN, ENC_LITTLE_ENDIAN, ENC_ASCII, ENC_UTF_8 = 0, 0x80000000, 0, 2
expert = {
  group = { CHECKSUM = "Checksum", SEQUENCE = "Sequence", RESPONSE_CODE = "Response", REQUEST_CODE = "Request",
    UNDECODED = "Undecoded", REASSEMBLE = "Reassemble", MALFORMED = "Malformed", DEBUG = "Debug",
    PROTOCOL = "Protocol", SECURITY = "Security", COMMENTS_GROUP = "Comment", DECRYPTION = "Decryption",
    ASSUMPTION = "Assumption", DEPRECATED = "Deprecated" },
  severity = { COMMENT = "Comment", CHAT = "Chat", NOTE = "Note", WARN = "Warning", ERROR = "Error" },
}

-- ProtoField -----------------------------------------------------------------

local FIELD = { __class = "ProtoField" }
FIELD.__index = FIELD
FIELD.__tostring = function(f) return "ProtoField(" .. f.abbrev .. ")" end

local SIZES = { uint8 = 1, uint16 = 2, uint32 = 4, uint64 = 8, char = 1, ipv4 = 4, ipv6 = 16 }
frametype = { NONE = 0, REQUEST = 1, RESPONSE = 2, ACK = 3, DUP_ACK = 4 }
local INT_BASES = { [base.DEC] = true, [base.HEX] = true, [base.OCT] = true, [base.DEC_HEX] = true,
  [base.HEX_DEC] = true }

local function check_abbrev(abbrev)
  if type(abbrev) ~= "string" or not string.find(abbrev, "^[%w_]+[%w_%.%-]*$") then
    fail("ProtoField: bad abbreviation " .. tostring(abbrev))
  end
end

local function int_field(kind)
  return function(abbrev, name, fbase, valuestring, mask, desc)
    check_abbrev(abbrev)
    fbase = fbase or base.DEC
    if kind == "framenum" then
      if fbase ~= base.NONE then fail("ProtoField.framenum: base must be base.NONE") end
      if valuestring ~= nil and type(valuestring) ~= "number" then
        fail("ProtoField.framenum: a frametype is expected after the base")
      end
      valuestring = nil
    elseif kind == "char" then
      if fbase ~= base.NONE and fbase ~= base.HEX and fbase ~= base.OCT then
        fail("ProtoField.char: base must be base.NONE, base.HEX or base.OCT")
      end
    elseif not INT_BASES[fbase] then
      fail("ProtoField." .. kind .. ": invalid base " .. tostring(fbase))
    end
    if valuestring ~= nil and type(valuestring) ~= "table" then
      fail("ProtoField." .. kind .. ": valuestring must be a table")
    end
    if mask ~= nil then fail("ProtoField." .. kind .. ": masks are not expected") end
    if desc ~= nil and type(desc) ~= "string" then fail("ProtoField." .. kind .. ": desc must be a string") end
    return setmetatable({ abbrev = abbrev, name = name, kind = kind, base = fbase, vs = valuestring, desc = desc },
      FIELD)
  end
end

local function other_field(kind, has_display)
  return function(abbrev, name, a, b)
    check_abbrev(abbrev)
    local display, desc = nil, a
    if has_display then display, desc = a, b end
    if kind == "string" and display ~= nil and display ~= base.ASCII and display ~= base.UNICODE then
      fail("ProtoField.string: display must be base.ASCII or base.UNICODE")
    end
    if desc ~= nil and type(desc) ~= "string" then fail("ProtoField." .. kind .. ": desc must be a string") end
    return setmetatable({ abbrev = abbrev, name = name, kind = kind, base = display, desc = desc }, FIELD)
  end
end

ProtoField = {
  uint8 = int_field("uint8"), uint16 = int_field("uint16"), uint32 = int_field("uint32"),
  uint64 = int_field("uint64"), char = int_field("char"),
  framenum = int_field("framenum"), relative_time = other_field("relative_time", false),
  string = other_field("string", true), bytes = other_field("bytes", true),
  none = other_field("none", false), ipv4 = other_field("ipv4", false), ipv6 = other_field("ipv6", false),
}

-- ProtoExpert ----------------------------------------------------------------

local EXPERT_MT = { __class = "ProtoExpert" }
ProtoExpert = {
  new = function(abbrev, text, group, severity)
    check_abbrev(abbrev)
    if type(text) ~= "string" then fail("ProtoExpert.new: text must be a string") end
    if group == nil then fail("ProtoExpert.new: unknown group") end
    if severity == nil then fail("ProtoExpert.new: unknown severity") end
    return setmetatable({ abbrev = abbrev, text = text, group = group, severity = severity }, EXPERT_MT)
  end,
}

-- Pref -----------------------------------------------------------------------

local PREF_MT = { __class = "Pref" }
Pref = {
  uint = function(label, default, descr)
    if type(default) ~= "number" or default < 0 or math.floor(default) ~= default then
      fail("Pref.uint: default must be a non-negative integer")
    end
    return setmetatable({ kind = "uint", label = label, value = default, descr = descr }, PREF_MT)
  end,
  bool = function(label, default, descr)
    return setmetatable({ kind = "bool", label = label, value = default, descr = descr }, PREF_MT)
  end,
  string = function(label, default, descr)
    return setmetatable({ kind = "string", label = label, value = default, descr = descr }, PREF_MT)
  end,
  range = function(label, default, descr, max)
    if type(default) ~= "string" or type(max) ~= "number" then fail("Pref.range(label, default, descr, max)") end
    return setmetatable({ kind = "range", label = label, value = default, descr = descr, max = max }, PREF_MT)
  end,
}

-- Proto ----------------------------------------------------------------------

local PROTO_MT = { __class = "Proto" }
PROTO_MT.__index = function(p, key)
  if key == "register_heuristic" then
    return function(self, list, fn)
      if type(fn) ~= "function" then fail("register_heuristic: function expected") end
      M.heuristics[list] = M.heuristics[list] or {}
      table.insert(M.heuristics[list], { proto = self, fn = fn })
    end
  end
  return rawget(p, "_slots")[key]
end
PROTO_MT.__newindex = function(p, key, value)
  local slots = rawget(p, "_slots")
  if key == "fields" then
    for _, f in ipairs(value) do
      if class_of(f) ~= "ProtoField" then fail("Proto.fields: not a ProtoField: " .. tostring(f)) end
      if M.fields[f.abbrev] then fail("duplicate field " .. f.abbrev) end
      M.fields[f.abbrev] = f
      f.registered = true
    end
  elseif key == "experts" then
    for _, e in ipairs(value) do
      if class_of(e) ~= "ProtoExpert" then fail("Proto.experts: not a ProtoExpert") end
      if M.fields[e.abbrev] then fail("expert abbreviation collides with a field: " .. e.abbrev) end
      e.registered = true
    end
  elseif key == "dissector" or key == "prefs_changed" or key == "init" then
    if type(value) ~= "function" then fail("Proto." .. key .. " must be a function") end
  else
    fail("Proto: cannot set " .. tostring(key))
  end
  slots[key] = value
end

local function new_prefs()
  local values, prefs = {}, {}
  return setmetatable({}, {
    __index = function(_, k) return values[k] end,
    __newindex = function(_, k, pref)
      if class_of(pref) ~= "Pref" then fail("prefs." .. k .. ": a Pref is expected") end
      prefs[k] = pref
      values[k] = pref.value
    end,
    __pairs = function() return pairs(prefs) end,
    -- for the tests: change a value as the preferences dialog would
    __call = function(_, k, v)
      if prefs[k] == nil then error("no pref " .. k) end
      values[k] = v
    end,
  })
end

function Proto(name, desc)
  if type(name) ~= "string" or type(desc) ~= "string" then fail("Proto(name, desc)") end
  local p = setmetatable({ _slots = { name = name, description = desc, prefs = new_prefs() } }, PROTO_MT)
  M.protos[name] = p
  return p
end

-- DissectorTable -------------------------------------------------------------

local TABLE_MT = { __class = "DissectorTable" }
TABLE_MT.__index = TABLE_MT
-- A number, or a range string such as "4579,5000-5010", as a list of numbers.
local function keys_of(key, what)
  if type(key) == "number" then return { key } end
  if type(key) ~= "string" then fail(what .. ": number or range string expected") end
  local out = {}
  for part in string.gmatch(key, "[^,]+") do
    local a, b = string.match(part, "^%s*(%d+)%s*%-%s*(%d+)%s*$")
    if a == nil then
      a = string.match(part, "^%s*(%d+)%s*$")
      b = a
    end
    if a == nil then fail(what .. ": bad range " .. key) end
    for k = tonumber(a), tonumber(b) do out[#out + 1] = k end
  end
  return out
end
function TABLE_MT:add(key, proto)
  if class_of(proto) ~= "Proto" then fail("DissectorTable:add: Proto expected") end
  for _, k in ipairs(keys_of(key, "DissectorTable:add")) do self.entries[k] = proto end
end
function TABLE_MT:remove(key, proto)
  for _, k in ipairs(keys_of(key, "DissectorTable:remove")) do
    if self.entries[k] == proto then self.entries[k] = nil end
  end
end
function TABLE_MT:get_dissector(key)
  return self.entries[key]
end
DissectorTable = {
  get = function(name)
    if M.tables[name] == nil then
      if name ~= "tcp.port" and name ~= "udp.port" then fail("DissectorTable.get: no table " .. name) end
      M.tables[name] = setmetatable({ name = name, entries = {} }, TABLE_MT)
    end
    return M.tables[name]
  end,
}

-- Tvb and TvbRange -----------------------------------------------------------

local TVB = { __class = "Tvb" }
local RANGE = { __class = "TvbRange" }

local function new_tvb(data, reported)
  return setmetatable({ data = data, reported = reported or #data }, TVB)
end
M.new_tvb = new_tvb

local function int_arg(v, what)
  if type(v) ~= "number" or math.floor(v) ~= v then
    fail(what .. ": integer expected, got " .. tostring(v))
  end
  return v
end

local function new_range(tvb, offset, length)
  offset = int_arg(offset or 0, "offset")
  length = int_arg(length or -1, "length")
  local len = #tvb.data
  if offset < 0 or offset > len then fail("Range is out of bounds") end
  if length == -1 then
    length = len - offset
  elseif length < 0 or offset + length > len then
    fail("Range is out of bounds")
  end
  return setmetatable({ parent = tvb, off = offset, length = length }, RANGE)
end

TVB.__index = {
  len = function(t) return #t.data end,
  reported_len = function(t) return t.reported end,
  reported_length_remaining = function(t, off) return t.reported - (off or 0) end,
  range = function(t, off, len) return new_range(t, off, len) end,
  raw = function(t, off, len) return new_range(t, off, len):raw() end,
}
TVB.__call = function(t, off, len) return new_range(t, off, len) end
TVB.__tostring = function(t) return "Tvb(" .. #t.data .. " bytes)" end

local function bytes_of(r)
  return string.sub(r.parent.data, r.off + 1, r.off + r.length)
end

local function uint_of(r, little, what)
  if r.length < 1 or r.length > 4 then fail(what .. ": range must be 1 to 4 bytes, not " .. r.length) end
  local b, v = bytes_of(r), 0
  for i = 1, #b do
    local j = little and (#b - i + 1) or i
    v = v * 256 + string.byte(b, j)
  end
  return v
end

local UINT64 = { __class = "UInt64" }
UINT64.__tostring = function(u) return u.text end
UINT64.__eq = function(a, b) return a.text == b.text end

RANGE.__index = {
  len = function(r) return r.length end,
  offset = function(r) return r.off end,
  uint = function(r) return uint_of(r, false, "TvbRange:uint") end,
  le_uint = function(r) return uint_of(r, true, "TvbRange:le_uint") end,
  le_uint64 = function(r)
    if r.length < 1 or r.length > 8 then fail("TvbRange:le_uint64: range must be 1 to 8 bytes") end
    local b = bytes_of(r) .. string.rep("\0", 8 - r.length)
    return setmetatable({ text = __u64_le(b) }, UINT64)
  end,
  raw = function(r, off, len)
    off = off or 0
    len = len or (r.length - off)
    if off < 0 or len < 0 or off + len > r.length then fail("TvbRange:raw: out of bounds") end
    return string.sub(r.parent.data, r.off + off + 1, r.off + off + len)
  end,
  string = function(r) return bytes_of(r) end,
  bytes = function(r) return bytes_of(r) end,
  range = function(r, off, len)
    off = off or 0
    len = len or (r.length - off)
    if off < 0 or len < 0 or off + len > r.length then fail("Range is out of bounds") end
    return new_range(r.parent, r.off + off, len)
  end,
  tvb = function(r) return new_tvb(bytes_of(r)) end,
}
RANGE.__tostring = function(r)
  return (string.gsub(bytes_of(r), ".", function(c) return string.format("%02x", string.byte(c)) end))
end

-- TreeItem -------------------------------------------------------------------

local ITEM = { __class = "TreeItem" }
ITEM.__index = ITEM

local function new_item(parent, fields)
  fields.children = {}
  fields.experts = {}
  local item = setmetatable(fields, ITEM)
  if parent then table.insert(parent.children, item) end
  return item
end
M.new_item = new_item

-- The value Wireshark would read for `field` from `range`.
local function read_value(field, range, little)
  local kind, b = field.kind, bytes_of(range)
  local size = SIZES[kind]
  if size and range.length ~= size then
    fail(field.abbrev .. ": " .. kind .. " needs a " .. size .. "-byte range, got " .. range.length)
  end
  if kind == "uint8" or kind == "uint16" or kind == "uint32" or kind == "char" then
    return uint_of(range, little, field.abbrev)
  elseif kind == "uint64" then
    if not little then b = string.reverse(b) end
    return __u64_le(b)
  elseif kind == "ipv4" then
    return string.format("%d.%d.%d.%d", string.byte(b, 1, 4))
  elseif kind == "ipv6" then
    return __ipv6(b)
  elseif kind == "string" then
    return b
  elseif kind == "bytes" then
    return tostring(range)
  end
  return nil
end

local function check_value(field, value)
  local kind = field.kind
  if kind == "relative_time" then
    if class_of(value) ~= "NSTime" then fail(field.abbrev .. ": NSTime value expected") end
    return string.format("%d.%09d", value.secs, value.nsecs)
  elseif kind == "framenum" then
    if type(value) ~= "number" or math.floor(value) ~= value or value < 1 then
      fail(field.abbrev .. ": frame number expected, got " .. tostring(value))
    end
  elseif kind == "string" then
    if type(value) ~= "string" then fail(field.abbrev .. ": string value expected") end
  elseif kind == "none" then
    fail(field.abbrev .. ": FT_NONE takes no value")
  elseif kind == "uint64" then
    -- Wireshark 4.0 takes only a UInt64 here; a Lua number is an error.
    fail(field.abbrev .. ": UInt64 value expected, got " .. type(value))
  elseif kind == "char" then
    fail(field.abbrev .. ": Wireshark 4.0 takes no explicit value for FT_CHAR")
  elseif SIZES[kind] and kind ~= "ipv4" and kind ~= "ipv6" then
    if type(value) ~= "number" or math.floor(value) ~= value then
      fail(field.abbrev .. ": integer value expected, got " .. tostring(value))
    end
  else
    fail(field.abbrev .. ": explicit values of type " .. kind .. " are not supported by the mock")
  end
  return value
end

local function add(parent, little, a, b, c, ...)
  if select("#", ...) > 0 then fail("TreeItem:add: labels after the value are not expected") end
  if parent.no_tree then
    -- No tree: an item without an item, not recorded.
    return setmetatable({ children = {}, experts = {}, no_tree = true }, ITEM)
  end
  local cls = class_of(a)
  if cls == "Proto" then
    if b ~= nil and class_of(b) ~= "TvbRange" then fail("TreeItem:add(proto, range)") end
    return new_item(parent, { proto = a.name, range = b, text = a.description })
  elseif cls == "ProtoField" then
    if not a.registered then fail("field " .. a.abbrev .. " is not registered in Proto.fields") end
    if b ~= nil and class_of(b) ~= "TvbRange" then
      -- add(field, value): a generated item without bytes
      if c ~= nil then fail(a.abbrev .. ": TvbRange expected before the value") end
      b, c = nil, b
    end
    local value
    if c ~= nil then
      value = check_value(a, c)
    elseif b ~= nil then
      value = read_value(a, b, little)
    elseif a.kind ~= "none" then
      fail(a.abbrev .. ": no range and no value")
    end
    if a.vs and type(value) == "number" then
      -- what the tree shows; an unknown value shows "Unknown"
      return new_item(parent, { field = a, range = b, value = value, shown = a.vs[value] or "Unknown" })
    end
    return new_item(parent, { field = a, range = b, value = value })
  elseif cls == "TvbRange" then
    if c ~= nil then fail("text item: one label only") end
    return new_item(parent, { range = a, text = b })
  end
  fail("TreeItem:add: Proto, ProtoField or TvbRange expected, got " .. tostring(a))
end

function ITEM:add(...) return add(self, false, ...) end
function ITEM:add_le(...) return add(self, true, ...) end
function ITEM:append_text(s)
  if type(s) ~= "string" then fail("append_text: string expected") end
  self.appended = (self.appended or "") .. s
  return self
end
function ITEM:set_text(s)
  if type(s) ~= "string" then fail("set_text: string expected") end
  self.text, self.appended = s, nil
  return self
end
function ITEM:set_len(n)
  int_arg(n, "set_len")
  if self.range == nil or n < 0 or self.range.off + n > #self.range.parent.data then fail("set_len: out of bounds") end
  self.range = new_range(self.range.parent, self.range.off, n)
  return self
end
function ITEM:set_generated() self.generated = true return self end
function ITEM:add_proto_expert_info(e, text)
  if class_of(e) ~= "ProtoExpert" then fail("add_proto_expert_info: ProtoExpert expected") end
  if not e.registered then fail("expert " .. e.abbrev .. " is not registered in Proto.experts") end
  if text ~= nil and type(text) ~= "string" then fail("add_proto_expert_info: text must be a string") end
  table.insert(self.experts, { abbrev = e.abbrev, group = e.group, severity = e.severity, text = text or e.text })
  return self
end

-- The tree as a flat list in pre-order: { depth, abbrev (field, proto name or "-"),
-- value (as text), shown (value string), text (label), off, len } and, for expert
-- info, { depth, expert = abbrev, text }.
function M.items(item, depth, out)
  out = out or {}
  depth = depth or 0
  for _, child in ipairs(item.children) do
    local text = (child.text or "") .. (child.appended or "")
    local value = child.value
    if value ~= nil and type(value) == "number" then value = string.format("%.0f", value) end
    table.insert(out, { depth = depth, abbrev = child.field and child.field.abbrev or child.proto or "-",
      value = value, shown = child.shown, text = text,
      off = child.range and child.range.off or -1, len = child.range and child.range.length or -1 })
    for _, e in ipairs(child.experts) do
      table.insert(out, { depth = depth + 1, expert = e.abbrev, text = e.text })
    end
    M.items(child, depth + 1, out)
  end
  return out
end

-- ByteArray (only what a dissector's private storage needs) ---------------------

local BYTES = { __class = "ByteArray" }
BYTES.__index = {
  set_size = function(b, n)
    int_arg(n, "ByteArray:set_size")
    if n < 0 then fail("ByteArray:set_size: negative size") end
    for i = b.n, n - 1 do b.data[i] = 0 end
    for i = n, b.n - 1 do b.data[i] = nil end
    b.n = n
  end,
  set_index = function(b, i, v)
    int_arg(i, "ByteArray:set_index index")
    int_arg(v, "ByteArray:set_index value")
    if i < 0 or i >= b.n then fail("ByteArray:set_index: index out of range") end
    if v < 0 or v > 255 then fail("ByteArray:set_index: value out of range") end
    b.data[i] = v
  end,
  get_index = function(b, i)
    int_arg(i, "ByteArray:get_index")
    if i < 0 or i >= b.n then fail("ByteArray:get_index: index out of range") end
    return b.data[i]
  end,
  len = function(b) return b.n end,
  raw = function(b, off, len)
    off = int_arg(off or 0, "ByteArray:raw offset")
    len = int_arg(len or (b.n - off), "ByteArray:raw length")
    if off < 0 or len < 0 or off + len > b.n then fail("ByteArray:raw: out of range") end
    local out = {}
    for i = off, off + len - 1 do out[#out + 1] = string.char(b.data[i]) end
    return table.concat(out)
  end,
}
ByteArray = {
  new = function(hex)
    if hex ~= nil then fail("the mock's ByteArray.new takes no bytes") end
    return setmetatable({ data = {}, n = 0 }, BYTES)
  end,
}

-- NSTime and Field ------------------------------------------------------------

local NSTIME = { __class = "NSTime" }
NSTime = {
  new = function(secs, nsecs)
    int_arg(secs, "NSTime.new secs")
    int_arg(nsecs, "NSTime.new nsecs")
    if nsecs < 0 or nsecs >= 1e9 then fail("NSTime.new: nsecs out of range") end
    return setmetatable({ secs = secs, nsecs = nsecs }, NSTIME)
  end,
}

-- Field.new: refused. A field extractor yields nothing in a pass without a tree (so a
-- value read from one is wrong there), and its existence alone makes tshark build a
-- tree for every packet, so the dissector must not use one.
Field = {
  new = function(name)
    fail("Field.new(" .. tostring(name) .. "): the dissector must not use field extractors")
  end,
}

-- Pinfo and columns ----------------------------------------------------------

local COLUMN = { __class = "Column" }
COLUMN.__index = {
  set = function(c, s) if type(s) ~= "string" then fail("Column:set: string expected") end c.text = s end,
  append = function(c, s) if type(s) ~= "string" then fail("Column:append: string expected") end c.text = c.text .. s end,
  prepend = function(c, s) c.text = s .. c.text end,
  clear = function(c) c.text = "" end,
}
COLUMN.__tostring = function(c) return c.text end

local function new_cols(info, protocol)
  local cols = { info = setmetatable({ text = info }, COLUMN), protocol = setmetatable({ text = protocol }, COLUMN) }
  return setmetatable({}, {
    __index = function(_, k)
      if cols[k] == nil then fail("no column " .. tostring(k)) end
      return cols[k]
    end,
    __newindex = function(_, k, v)
      if cols[k] == nil then fail("no column " .. tostring(k)) end
      if type(v) ~= "string" then fail("column text must be a string") end
      cols[k].text = v
    end,
  })
end

-- pinfo.src / pinfo.dst: an Address, whose tostring is its text.
local ADDRESS = { __class = "Address" }
ADDRESS.__tostring = function(a) return a.text end
ADDRESS.__eq = function(a, b) return a.text == b.text end
local function new_address(text)
  return setmetatable({ text = text }, ADDRESS)
end

local PINFO = { __class = "Pinfo" }
PINFO.__index = function(p, k) return rawget(p, "_f")[k] end
PINFO.__newindex = function(p, k, v)
  local f = rawget(p, "_f")
  if k == "conversation" then
    if class_of(v) ~= "Proto" then fail("pinfo.conversation: Proto expected") end
    M.conversation[M.stream] = v
  elseif k == "desegment_len" or k == "desegment_offset" then
    f[k] = v
  else
    fail("Pinfo: cannot set " .. tostring(k))
  end
end

-- TCP desegmentation ---------------------------------------------------------

M.ONE_MORE_SEGMENT = 0x0fffffff
DESEGMENT_ONE_MORE_SEGMENT = M.ONE_MORE_SEGMENT

-- The harness: TCP streams as Wireshark's TCP dissector hands them over --------

-- Dissects a sequence of TCP segments as Wireshark does on its first pass.
-- `segments` is a list of { from_server = bool, data = bytes, stream = n (default 0),
-- server_port = the server's port for this segment (default opts.server_port),
-- time = seconds since the capture began (default: the segment number in ms) };
-- each stream is its own connection. `opts.server_port` (default 4579),
-- `opts.client_port` (default 50000, plus the stream number), `opts.reassemble`
-- (default true), `opts.revisit` ("forward" or "reverse": then every packet is
-- dissected again with pinfo.visited set, as in a second pass or the GUI, and those
-- records are returned). Calls Proto.init first, as opening a file does.
-- Returns one record per segment: { info, protocol, items = {...}, experts = {...},
-- errors = {...}, pending = bytes waiting for reassembly in that direction }.
function M.dissect_stream(segments, opts)
  opts = opts or {}
  local server_port = opts.server_port or 4579
  local server_addr, client_addr = opts.server_addr or "127.0.0.1", opts.client_addr or "127.0.0.1"
  local reassemble = opts.reassemble ~= false
  local pending = {}
  local records, handed = {}, {}
  M.conversation = {}
  for _, p in pairs(M.protos) do
    if p.init then p.init() end
  end
  local function run(n, seg, data, visited)
    local stream = seg.stream or 0
    local dir = seg.from_server and true or false
    local client_port = (opts.client_port or 50000) + stream
    local server_port = seg.server_port or server_port
    local src, dst = client_port, server_port
    if dir then src, dst = server_port, client_port end
    local f = { number = n, visited = visited, can_desegment = reassemble and 1 or 0, stream = stream,
      rel_ts = seg.time or n / 1000, desegment_offset = 0, desegment_len = 0, src_port = src, dst_port = dst,
      src = new_address(dir and server_addr or client_addr), dst = new_address(dir and client_addr or server_addr),
      cols = new_cols(src .. " -> " .. dst .. " [PSH, ACK] Len=" .. #seg.data, "TCP") }
    local pinfo = setmetatable({ _f = f }, PINFO)
    M.pinfo = pinfo
    M.errors = {}
    M.stream = stream
    -- Wireshark's root for a Lua dissector is a hidden "fake item" under the tree; with
    -- no tree (opts.tree == false: a first pass without one, as tshark -2 makes), it has
    -- no item, so no text, and what is added to it is thrown away.
    local has_tree = visited or opts.tree ~= false
    local root = new_item(nil, { text = has_tree and "Wireshark Lua fake item" or nil, no_tree = not has_tree })
    local tvb = new_tvb(data)
    local tcp = M.tables["tcp.port"]
    local proto = M.conversation[stream] or (tcp and (tcp.entries[src] or tcp.entries[dst]))
    local handled = false
    if proto then
      local ok, err = pcall(proto.dissector, tvb, pinfo, root)
      if not ok then table.insert(M.errors, "Lua error: " .. tostring(err)) end
      handled = true
    else
      for _, h in ipairs(M.heuristics.tcp or {}) do
        local ok, res = pcall(h.fn, tvb, pinfo, root)
        if not ok then
          table.insert(M.errors, "Lua error in heuristic: " .. tostring(res))
        elseif res then
          handled = true
          break
        end
      end
    end
    local experts = {}
    local function collect(item)
      for _, e in ipairs(item.experts) do table.insert(experts, e.abbrev .. " | " .. e.text) end
      for _, c in ipairs(item.children) do collect(c) end
    end
    collect(root)
    M.pinfo = nil
    return {
      info = tostring(f.cols.info), protocol = tostring(f.cols.protocol), items = M.items(root),
      experts = experts, errors = M.errors, handled = handled,
    }, f
  end
  for n, seg in ipairs(segments) do
    local key = (seg.stream or 0) .. (seg.from_server and "s" or "c")
    local data = (pending[key] or "") .. seg.data
    handed[n] = data
    local record, f = run(n, seg, data, false)
    if record.handled and reassemble and f.desegment_len > 0 then
      pending[key] = string.sub(data, f.desegment_offset + 1)
    else
      pending[key] = ""
    end
    record.pending = pending[key]
    records[n] = record
  end
  if opts.revisit then
    local again = {}
    local first, last, step = 1, #segments, 1
    if opts.revisit == "reverse" then first, last, step = #segments, 1, -1 end
    for n = first, last, step do
      again[n] = run(n, segments[n], handed[n], true)
      again[n].pending = records[n].pending
    end
    return again
  end
  return records
end

return M
