-- Reliable fetch (worker/shell/transport.py): take the first messages waiting for the
-- consumer (up to its free prefetch) and in the same step record each as unacked (kombu's
-- hash and index) and as held by this consumer. Nothing can fall between the pop and the
-- record, so a consumer killed at any moment after this leaves the messages where
-- fetch_restore.lua finds them.
-- First the consumer's own moving list: the message a blocking BLMOVE moved there from the
-- list named in its wait key (a message in it is the consumer's, restored like a held one);
-- then the lists in the order given (priority steps first, then the queues in rotation
-- order, as kombu's BRPOP). When every list is empty and ARGV[7] names a list, that list
-- is written to the wait key before the reply: the consumer then blocks in
-- `BLMOVE <list> <moving list>` and calls this script again when it returns.
-- No-ack queues (replies, events) are popped bare, as kombu does.
-- Bytes that are not a kombu message (not a JSON object with `properties`) never enter
-- kombu's unacked hash: kombu's own restore (restore_visible, in every kombu client on
-- this Redis) would read them as JSON and raise. They are held here alone, inline
-- ("<size>:<bytes><list>"), and the reply says so: the consumer dead-letters them.
-- KEYS: 1 unacked hash, 2 unacked index, 3 this consumer's held hash, 4 consumers set,
--       5 this consumer's alive key, 6 its moving list, 7 its wait key, 8.. the lists
-- ARGV: 1 now (epoch s), 2 delivery tag, 3 consumer id, 4 alive expiry (ms),
--       5 and 6: the unacked entry's tail and no-ack flag of the moving list's queue,
--       7 the list to wait on when all are empty ("": none), 8 how many messages to take
--       at most (the consumer's free prefetch), then for the n-th list: ARGV[7 + 2n] the
--       unacked entry's tail `,"",<queue as JSON>]` and ARGV[8 + 2n] "1" for a no-ack queue
-- The k-th message taken gets the delivery tag ARGV[2] (k = 1) or ARGV[2] .. "." .. k.
-- Returns nil when every list is empty, else {n, payload, 1 if not a kombu message, ...},
-- three items per message in the order taken, n = 0 for the moving list.
redis.call("SET", KEYS[5], "1", "PX", ARGV[4])

local taken, limit, out = 0, tonumber(ARGV[8]), {}

local function take(payload, source, tail, no_ack)
  taken = taken + 1
  local junk = false
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
    end
    redis.call("SADD", KEYS[4], ARGV[3])
  end
  return junk and 1 or 0
end

local moved = redis.call("RPOP", KEYS[6])
if moved then
  local source = redis.call("GET", KEYS[7]) or KEYS[8]
  local junk = take(moved, source, ARGV[5], ARGV[6])
  out[#out + 1], out[#out + 2], out[#out + 3] = 0, moved, junk
end
for i = 8, #KEYS do
  local n = i - 7
  while taken < limit do
    local payload = redis.call("RPOP", KEYS[i])
    if not payload then
      break
    end
    local junk = take(payload, KEYS[i], ARGV[7 + 2 * n], ARGV[8 + 2 * n])
    out[#out + 1], out[#out + 2], out[#out + 3] = n, payload, junk
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
