-- Reliable fetch (worker/shell/transport.py): take the first messages waiting for the
-- consumer (up to its free prefetch) and in the same step record each as unacked (kombu's
-- hash and index) and as taken by this consumer. Nothing can fall between the pop and the
-- record, so a consumer killed at any moment after this leaves the messages where
-- fetch_restore.lua finds them.
-- First the consumer's own moving list: the message a blocking BLMOVE moved there from the
-- list named in its wait key (a message in it is the consumer's, restored like a taken one);
-- then the lists in the order given (priority steps first, then the queues in rotation
-- order, as kombu's BRPOP). When every list is empty and ARGV[7] names a list, that list
-- is written to the wait key before the reply: the consumer then blocks in
-- `BLMOVE <list> <moving list>` and calls this script again when it returns.
-- No-ack queues (replies, events) are popped bare, as kombu does.
-- An inbound task message (its task named in ARGV[11]) whose body's one argument has a
-- string `order_id` and an `occurred_at` that is an RFC 3339 timestamp the worker accepts
-- (schemas/types.py, parse_timestamp) is also recorded in its order's in-flight hash
-- (docs/design.md, backlog safety), in the same step: field = the task id, value =
-- "<occurred_at in epoch s> <now>", the form every release reads (release 1.1 reads no
-- other: docs/operations.md, "Upgrades"). A message not recorded here (ARGV[9] = "": a
-- broker that is not the state's Redis; or an `occurred_at` this script does not read for
-- sure) is recorded by the worker itself when Celery receives it, if it can parse it.
-- Bytes that are not a kombu message (not a JSON object with `properties`) never enter
-- kombu's unacked hash: kombu's own restore (restore_visible, in every kombu client on
-- this Redis) would read them as JSON and raise. They are kept here alone, inline
-- ("<size>:<bytes><list>"), and the reply says so: the consumer dead-letters them.
-- KEYS: 1 unacked hash, 2 unacked index, 3 this consumer's taken hash, 4 consumers set,
--       5 this consumer's alive key, 6 its moving list, 7 its wait key, 8.. the lists
-- ARGV: 1 now (epoch s), 2 delivery tag, 3 consumer id, 4 alive expiry (ms),
--       5 and 6: the unacked entry's tail and no-ack flag of the moving list's queue,
--       7 the list to wait on when all are empty ("": none), 8 how many messages to take
--       at most (the consumer's free prefetch), 9 and 10: the in-flight hash key's prefix
--       and suffix around the order id ("": none recorded), 11 the inbound task names as
--       "|name|name|", then for the n-th list: ARGV[10 + 2n] the unacked entry's tail
--       `,"",<queue as JSON>]` and ARGV[11 + 2n] "1" for a no-ack queue
-- The k-th message taken gets the delivery tag ARGV[2] (k = 1) or ARGV[2] .. "." .. k.
-- Returns nil when every list is empty, else {n, payload, 1 if not a kombu message,
-- order id recorded in flight or "", ...}, four items per message in the order taken,
-- n = 0 for the moving list.
redis.call("SET", KEYS[5], "1", "PX", ARGV[4])

local taken, limit, out = 0, tonumber(ARGV[8]), {}

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local sextet = {}
for i = 1, 64 do
  sextet[string.byte(alphabet, i)] = i - 1
end

-- Standard base64 (kombu's body encoding), "=" padded; nil for anything else.
local function unbase64(text)
  if #text % 4 ~= 0 then
    return nil
  end
  local parts, char, floor = {}, string.char, math.floor
  for i = 1, #text, 4 do
    local a, b, c, d = string.byte(text, i, i + 3)
    local va, vb, vc, vd = sextet[a], sextet[b], sextet[c], sextet[d]
    if not va or not vb then
      return nil
    end
    if vd then
      if not vc then
        return nil
      end
      local x = va * 262144 + vb * 4096 + vc * 64 + vd
      parts[#parts + 1] = char(floor(x / 65536), floor(x / 256) % 256, x % 256)
    elseif i + 3 ~= #text or d ~= 61 then
      return nil
    elseif vc then
      local x = va * 262144 + vb * 4096 + vc * 64
      parts[#parts + 1] = char(floor(x / 65536), floor(x / 256) % 256)
    elseif c == 61 then
      parts[#parts + 1] = char(floor((va * 262144 + vb * 4096) / 65536))
    else
      return nil
    end
  end
  return table.concat(parts)
end

local month_days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

-- Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
  local floor = math.floor
  if m <= 2 then
    y = y - 1
  end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end

-- An occurred_at as epoch seconds, as text that reads back (Python's float()) as the
-- very number the worker writes for it (`datetime.timestamp()` of parse_timestamp: the
-- same instant, fraction truncated to microseconds); nil unless parse_timestamp accepts
-- it: RFC 3339 with an offset (`YYYY-MM-DD[Tt ]HH:MM:SS[.1 to 9 digits](Z|z|+HH:MM|-HH:MM)`),
-- a real date and time (no second 60, no hour 24), from 1970 to the end of 2999 UTC.
local function epoch_text(stamp)
  local y, mo, d, h, mi, s, rest = string.match(stamp,
    "^([0-9][0-9][0-9][0-9])%-([0-9][0-9])%-([0-9][0-9])[Tt ]([0-9][0-9]):([0-9][0-9]):([0-9][0-9])(.*)$")
  if not y then
    return nil
  end
  local fraction, zone = string.match(rest, "^%.([0-9]+)(.*)$")
  if not fraction then
    fraction, zone = "", rest
  elseif #fraction > 9 then
    return nil
  end
  local offset = 0
  if zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = string.match(zone, "^([+-])([0-9][0-9]):([0-9][0-9])$")
    if not sign then
      return nil
    end
    oh, om = tonumber(oh), tonumber(om)
    if oh > 23 or om > 59 then
      return nil
    end
    offset = (oh * 60 + om) * 60
    if sign == "-" then
      offset = -offset
    end
  end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if y < 1 or mo < 1 or mo > 12 or d < 1 or h > 23 or mi > 59 or s > 59 then
    return nil
  end
  local last = month_days[mo]
  if mo == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then
    last = 29
  end
  if d > last then
    return nil
  end
  local seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
  if seconds < 0 or seconds >= 32503680000 then -- 1970-01-01 to 3000-01-01 UTC
    return nil
  end
  local whole = string.format("%d", seconds)
  if fraction == "" then
    return whole
  end
  return whole .. "." .. string.sub(fraction, 1, 6)
end

-- The order id recorded in flight for this message, or "" (not an inbound task message
-- of that shape: the worker's own checks deal with it).
local function record_inflight(message)
  local headers = message.headers
  if ARGV[9] == "" or type(headers) ~= "table" or type(headers.task) ~= "string"
      or type(headers.id) ~= "string" or type(message.body) ~= "string"
      or message.properties.body_encoding ~= "base64"
      or message["content-type"] ~= "application/json" or #message.body > 65536
      or not string.find(ARGV[11], "|" .. headers.task .. "|", 1, true) then
    return ""
  end
  local raw = unbase64(message.body)
  if not raw then
    return ""
  end
  local ok, body = pcall(cjson.decode, raw)
  if not ok or type(body) ~= "table" or type(body[1]) ~= "table" then
    return ""
  end
  local args = body[1]
  if type(args[1]) ~= "table" or args[2] ~= nil then
    return ""
  end
  local order, occurred = args[1].order_id, args[1].occurred_at
  if type(order) ~= "string" or order == "" or type(occurred) ~= "string" then
    return ""
  end
  local occurred_epoch = epoch_text(occurred)
  if not occurred_epoch then
    return "" -- the worker parses it on receipt (and records it if it can)
  end
  redis.call("HSET", ARGV[9] .. order .. ARGV[10], headers.id, occurred_epoch .. " " .. ARGV[1])
  return order
end

local function take(payload, source, tail, no_ack)
  taken = taken + 1
  local junk, inflight = false, ""
  if no_ack ~= "1" then
    local tag = ARGV[2]
    if taken > 1 then
      tag = tag .. "." .. taken
    end
    local ok, message = pcall(cjson.decode, payload)
    junk = not (ok and type(message) == "table" and type(message.properties) == "table")
    if junk then
      redis.call("HSET", KEYS[3], tag, #payload .. ":" .. payload .. source)
    else
      -- kombu's entry [payload, exchange, routing key]: the anonymous exchange and the
      -- queue as routing key send a restored message back to the queue it came from.
      redis.call("HSET", KEYS[1], tag, "[" .. payload .. tail)
      redis.call("ZADD", KEYS[2], ARGV[1], tag)
      redis.call("HSET", KEYS[3], tag, #payload .. " " .. source)
      inflight = record_inflight(message)
    end
    redis.call("SADD", KEYS[4], ARGV[3])
  end
  return junk and 1 or 0, inflight
end

local moved = redis.call("RPOP", KEYS[6])
if moved then
  local source = redis.call("GET", KEYS[7]) or KEYS[8]
  local junk, inflight = take(moved, source, ARGV[5], ARGV[6])
  out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = 0, moved, junk, inflight
end
for i = 8, #KEYS do
  local n = i - 7
  while taken < limit do
    local payload = redis.call("RPOP", KEYS[i])
    if not payload then
      break
    end
    local junk, inflight = take(payload, KEYS[i], ARGV[10 + 2 * n], ARGV[11 + 2 * n])
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = n, payload, junk, inflight
  end
end
if taken > 0 then
  return out
end
if ARGV[7] ~= "" then
  redis.call("SET", KEYS[7], ARGV[7])
  redis.call("SADD", KEYS[4], ARGV[3])
end
return false
