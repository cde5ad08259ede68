-- Give back what dead consumers had taken (worker/shell/transport.py). For every consumer in
-- the set whose alive key has expired, other than the caller: each message it took that is still
-- unacked goes back to the head of the very list it was taken from (so it is the next one
-- out, priority step included), its unacked records go, and the consumer is forgotten.
-- A message acked or restored meanwhile has no unacked entry and is skipped: two living
-- consumers restoring at once cannot put one message back twice.
-- A dead consumer's moving list (a message its blocking BLMOVE moved there, not yet taken
-- by fetch.lua) goes back first, to the list named in its wait key: it is the newest.
-- Held records (fetch.lua): "<size> <list>" for a message whose bytes are the unacked
-- entry's, "<size>:<bytes><list>" for bytes that are not a kombu message (taken inline).
-- After a gap in the sweeps (every living consumer sweeps every second), nobody is declared
-- dead for a while: the gap means Redis was down (restarted: alive keys expire during the
-- outage, the living consumers' too) or no consumer lived; the living beat again first.
-- KEYS: 1 consumers set, 2 unacked hash, 3 unacked index, 4 sweep state hash
-- ARGV: 1 alive key prefix, 2 taken hash prefix, 3 the caller's consumer id,
--       4 longest normal gap between sweeps (s), 5 quiet time after a longer one (s),
--       6 moving list prefix, 7 wait key prefix, 8 the caller's alive expiry (ms): its
--       alive key is set first (6 to 8 optional: callers before them), 9 and 10: another
--       alive key and its expiry (ms), set too (the worker incarnation's while its event
--       loop ticks, worker/shell/hooks.py; optional)
-- Returns how many messages went back.
redis.replicate_commands()  -- TIME before writes (Redis < 7; always so since 7)
local clock = redis.call("TIME")
if ARGV[8] then
  redis.call("SET", ARGV[1] .. ARGV[3], "1", "PX", ARGV[8])
end
if ARGV[9] and ARGV[10] then
  redis.call("SET", ARGV[9], "1", "PX", ARGV[10])
end
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local last = tonumber(redis.call("HGET", KEYS[4], "last") or "")
local quiet_until = tonumber(redis.call("HGET", KEYS[4], "quiet_until") or "") or 0
redis.call("HSET", KEYS[4], "last", string.format("%.6f", now))
-- (a clock that went back counts as a gap: the quiet time never lasts longer than ARGV[5])
if last == nil or now - last > tonumber(ARGV[4]) or now < last then
  quiet_until = now + tonumber(ARGV[5])
  redis.call("HSET", KEYS[4], "quiet_until", string.format("%.6f", quiet_until))
end
if now < quiet_until then
  return 0
end
local restored = 0
for _, consumer in ipairs(redis.call("SMEMBERS", KEYS[1])) do
  if consumer ~= ARGV[3] and redis.call("EXISTS", ARGV[1] .. consumer) == 0 then
    if ARGV[6] and ARGV[7] then
      local moving, wait = ARGV[6] .. consumer, ARGV[7] .. consumer
      local source = redis.call("GET", wait)
      if source then
        -- newest first (BLMOVE pushed them on the left), so the oldest ends at the head
        for _, payload in ipairs(redis.call("LRANGE", moving, 0, -1)) do
          redis.call("RPUSH", source, payload)
          restored = restored + 1
        end
        redis.call("DEL", moving, wait)
      end
    end
    local taken = ARGV[2] .. consumer
    local entries = redis.call("HGETALL", taken)
    for i = 1, #entries, 2 do
      local tag, record = entries[i], entries[i + 1]
      local digits, kind = string.match(record, "^(%d+)([ :])")
      if digits then
        local size, rest = tonumber(digits), string.sub(record, #digits + 2)
        if kind == ":" then
          redis.call("RPUSH", string.sub(rest, size + 1), string.sub(rest, 1, size))
          restored = restored + 1
        else
          local entry = redis.call("HGET", KEYS[2], tag)
          if entry then
            -- the entry is "[" .. payload .. tail (fetch.lua): the payload's bytes, untouched
            redis.call("RPUSH", rest, string.sub(entry, 2, 1 + size))
            restored = restored + 1
          end
        end
      end
      redis.call("HDEL", KEYS[2], tag)
      redis.call("ZREM", KEYS[3], tag)
    end
    redis.call("DEL", taken)
    redis.call("SREM", KEYS[1], consumer)
  end
end
return restored
