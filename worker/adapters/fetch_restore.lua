-- Give back what dead consumers held (worker/transport.py). For every consumer in the set
-- whose alive key has expired, other than the caller: each message it held that is still
-- unacked goes back to the head of the very list it was taken from (so it is the next one
-- out, priority step included), its unacked records go, and the consumer is forgotten.
-- A message acked or restored meanwhile has no unacked entry and is skipped: two living
-- consumers restoring at once cannot put one message back twice.
-- KEYS: 1 consumers set, 2 unacked hash, 3 unacked index
-- ARGV: 1 alive key prefix, 2 held hash prefix, 3 the caller's consumer id
-- Returns how many messages went back.
local restored = 0
for _, consumer in ipairs(redis.call("SMEMBERS", KEYS[1])) do
  if consumer ~= ARGV[3] and redis.call("EXISTS", ARGV[1] .. consumer) == 0 then
    local held = ARGV[2] .. consumer
    local entries = redis.call("HGETALL", held)
    for i = 1, #entries, 2 do
      local tag = entries[i]
      local size, source = string.match(entries[i + 1], "^(%d+) (.*)$")
      local entry = redis.call("HGET", KEYS[2], tag)
      if entry and size then
        -- the entry is "[" .. payload .. tail (fetch.lua): the payload's bytes, untouched
        redis.call("RPUSH", source, string.sub(entry, 2, 1 + tonumber(size)))
        restored = restored + 1
      end
      redis.call("HDEL", KEYS[2], tag)
      redis.call("ZREM", KEYS[3], tag)
    end
    redis.call("DEL", held)
    redis.call("SREM", KEYS[1], consumer)
  end
end
return restored
