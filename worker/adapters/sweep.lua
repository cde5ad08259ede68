-- Armed deadlines whose re-check time is past ARGV[1]: push their re-check ARGV[2] s later
-- and return them (member, old score ...), at most ARGV[3]. KEYS: 1 armed zset.
local overdue = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "WITHSCORES", "LIMIT", 0, ARGV[3])
for i = 1, #overdue, 2 do
  redis.call("ZADD", KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), overdue[i])
end
return overdue
