-- Move deadlines due before ARGV[1] from the schedule to the armed set, at most ARGV[2].
-- Armed score = when the sweep should re-send it if it has not fired: ARGV[3] s after it
-- is due or after now (ARGV[4], if given), whichever is later: a deadline armed late (a
-- backlog of ticks) gets the same time for its task to be received as one armed early.
-- KEYS: 1 schedule zset, 2 armed zset. Returns a flat list member, due, member, due ...
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, ARGV[2])
local now = tonumber(ARGV[4] or "0")
for i = 1, #due, 2 do
  redis.call("ZREM", KEYS[1], due[i])
  redis.call("ZADD", KEYS[2], math.max(tonumber(due[i + 1]), now) + tonumber(ARGV[3]), due[i])
end
return due
