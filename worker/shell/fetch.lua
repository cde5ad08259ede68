-- Reliable fetch (worker/shell/transport.py): take the first message waiting in the consumer's
-- lists, in the order given (priority steps first, then the queues in rotation order, as
-- kombu's BRPOP), and in the same step record it as unacked (kombu's hash and index) and
-- as taken by this consumer. Nothing can fall between the pop and the record, so a consumer
-- killed at any moment after this leaves the message where fetch_restore.lua finds it.
-- No-ack queues (replies, events) are popped bare, as kombu does.
-- Bytes that are not a kombu message (not a JSON object with `properties`) never enter
-- kombu's unacked hash: kombu's own restore (restore_visible, in every kombu client on
-- this Redis) would read them as JSON and raise. They are kept here alone, inline
-- ("<size>:<bytes><list>"), and the reply says so: the consumer dead-letters them.
-- KEYS: 1 unacked hash, 2 unacked index, 3 this consumer's taken hash, 4 consumers set,
--       5 this consumer's alive key, 6.. the lists, in order
-- ARGV: 1 now (epoch s), 2 delivery tag, 3 consumer id, 4 alive expiry (ms), then for the
--       n-th list: ARGV[3 + 2n] the unacked entry's tail `,"",<queue as JSON>]` and
--       ARGV[4 + 2n] "1" for a no-ack queue
-- Returns nil when every list is empty, else {n, payload, 1 if not a kombu message}.
redis.call("SET", KEYS[5], "1", "PX", ARGV[4])
for i = 6, #KEYS do
  local payload = redis.call("RPOP", KEYS[i])
  if payload then
    local n, junk = i - 5, false
    if ARGV[4 + 2 * n] ~= "1" then
      local tag = ARGV[2]
      local ok, message = pcall(cjson.decode, payload)
      junk = not (ok and type(message) == "table" and type(message.properties) == "table")
      if junk then
        redis.call("HSET", KEYS[3], tag, #payload .. ":" .. payload .. KEYS[i])
      else
        -- kombu's entry [payload, exchange, routing key]: the anonymous exchange and the
        -- queue as routing key send a restored message back to the queue it came from.
        redis.call("HSET", KEYS[1], tag, "[" .. payload .. ARGV[3 + 2 * n])
        redis.call("ZADD", KEYS[2], ARGV[1], tag)
        redis.call("HSET", KEYS[3], tag, #payload .. " " .. KEYS[i])
      end
      redis.call("SADD", KEYS[4], ARGV[3])
    end
    return {n, payload, junk and 1 or 0}
  end
end
return false
