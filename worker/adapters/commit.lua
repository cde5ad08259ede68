-- One atomic commit of an order: state + message id seen + deadlines + outbox + timeline.
-- KEYS: 1 state hash, 2 seen set, 3 schedule zset, 4 armed zset, 5 outbox pending zset,
--       6 outbox entries hash, 7 inflight hash, 8 timeline list, 9 claims hash,
--       10 resends hash, 11 lateness list, 12 digests hash, 13 expired-order tombstone
-- ARGV: 1 expected version, 2 state JSON (and, after the byte 0x1e, the `known` field's
--       JSON: worker/adapters/state_codec.py; none: the field goes), 3 message id or "",
--       4 inflight task id or "", 5 now (epoch seconds), 6 timeline cap,
--       7 firing lateness in ms or "",
--       then counted groups:
--       n, (member, score) * n   deadlines to add or move (un-armed, re-scheduled)
--       n, member * n            deadlines to remove
--       n, (id, json) * n        outbox entries
--       n, line * n              timeline lines
--       n, message id * n        message ids to forget (dead-lettered: a replay may apply them)
--       then the order's TTL in ms, or "" while it is open (retention, worker/rules/retention.py)
--       then the tombstone's TTL in ms (longer), or "" (none: while open, or not written)
-- Events published by the commit itself (adapters/direct_publish.py), when there are any:
-- KEYS[14] the events exchange's binding set, KEYS[15..] one queue list per message; ARGV
-- ends (after the TTLs) with the messages (one per queue list), the binding members they
-- were routed by, and the count of those members. Bindings changed since: nothing
-- written, "rebind".
local message_id = ARGV[3]
local task_id = ARGV[4]
if message_id ~= "" and redis.call("SISMEMBER", KEYS[2], message_id) == 1 then
  if task_id ~= "" then redis.call("HDEL", KEYS[7], task_id) end
  return {"duplicate", 0}
end
local current = tonumber(redis.call("HGET", KEYS[1], "version") or "0")
if current ~= tonumber(ARGV[1]) then
  return {"conflict", current}
end
local direct = #KEYS > 13
if direct then
  local m = tonumber(ARGV[#ARGV])
  if redis.call("SCARD", KEYS[14]) ~= m then return {"rebind", current} end
  for j = #ARGV - m, #ARGV - 1 do
    if redis.call("SISMEMBER", KEYS[14], ARGV[j]) == 0 then return {"rebind", current} end
  end
end
local version = current + 1
local cut = string.find(ARGV[2], "\30", 1, true)
if cut then
  redis.call("HSET", KEYS[1], "state", string.sub(ARGV[2], 1, cut - 1), "version", version,
    "known", string.sub(ARGV[2], cut + 1))
else
  redis.call("HSET", KEYS[1], "state", ARGV[2], "version", version)
  redis.call("HDEL", KEYS[1], "known")
end
if message_id ~= "" then redis.call("SADD", KEYS[2], message_id) end
if task_id ~= "" then redis.call("HDEL", KEYS[7], task_id) end
if ARGV[7] ~= "" then
  redis.call("LPUSH", KEYS[11], ARGV[7])
  redis.call("LTRIM", KEYS[11], 0, 9999)
end
local i = 8
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call("ZREM", KEYS[4], ARGV[i])
  redis.call("HDEL", KEYS[9], ARGV[i])
  redis.call("HDEL", KEYS[10], ARGV[i])
  redis.call("ZADD", KEYS[3], ARGV[i + 1], ARGV[i])
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call("ZREM", KEYS[3], ARGV[i])
  redis.call("ZREM", KEYS[4], ARGV[i])
  redis.call("HDEL", KEYS[9], ARGV[i])
  redis.call("HDEL", KEYS[10], ARGV[i])
  i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call("HSET", KEYS[6], ARGV[i], ARGV[i + 1])
  redis.call("ZADD", KEYS[5], ARGV[5], ARGV[i])
  i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  for _ = 1, n do
    redis.call("RPUSH", KEYS[8], ARGV[i])
    i = i + 1
  end
  redis.call("LTRIM", KEYS[8], -tonumber(ARGV[6]), -1)
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call("SREM", KEYS[2], ARGV[i])
  i = i + 1
end
-- Retention: every per-order key expires together once the order is closed, and
-- persists again when it reopens (a new request), in this same atomic step.
local ttl = ARGV[i]
for _, key in ipairs({KEYS[1], KEYS[2], KEYS[7], KEYS[8], KEYS[12]}) do
  if ttl == "" then
    redis.call("PERSIST", key)
  else
    redis.call("PEXPIRE", key, ttl)
  end
end
-- 1.2: a closed order's tombstone outlives its keys, so a late message finds the order
-- known to have expired; an open order has none.
local tombstone = ARGV[i + 1]
if ttl == "" then
  redis.call("DEL", KEYS[13])
elseif tombstone ~= "" then
  redis.call("SET", KEYS[13], "1", "PX", tombstone)
end
if direct then
  local first = #ARGV - tonumber(ARGV[#ARGV]) - (#KEYS - 14)
  for j = 15, #KEYS do
    redis.call("LPUSH", KEYS[j], ARGV[first + j - 15])
  end
end
return {"ok", version}
