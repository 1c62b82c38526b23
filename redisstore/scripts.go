package redisstore

import "github.com/redis/go-redis/v9"

// This file holds every Lua script of the store. Each script takes the
// room's keys in roomKeys.all order: KEYS[1] sessions zset, KEYS[2] users
// zset, KEYS[3] info hash, KEYS[4] channel. ARGV[1] is the publish command
// (PUBLISH or SPUBLISH) and ARGV[2] the caller's now in Unix milliseconds;
// times never come from the server's clock.
//
// The info hash maps a user ID to cmsgpack(firstSeen, meta, lastSeen,
// suffix...), where each suffix names one session ("<ttl>:<session>")
// whose member in the sessions zset is "<len(user)>:<user>" .. suffix. A
// session's last heartbeat is its deadline minus its TTL, so a refresh
// need not write the record: the user's last heartbeat is the larger of
// the recorded lastSeen and its live sessions' last heartbeats, and every
// script that removes a session first folds the session's last heartbeat
// into the record. The hash's empty field (no user ID is empty) holds the
// records' version, which every change of a record changes (see bump), so
// that a reader may keep the records it decoded until it changes.
//
// Event kinds and reasons are the numbers of presence.Join (2),
// presence.Update (3), presence.Leave (4), presence.Left (1) and
// presence.Expired (2); a test checks that they agree.

const prelude = `
local S, U, H, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local PUB, now = ARGV[1], tonumber(ARGV[2])
local JOIN, UPDATE, LEAVE, LEFT, EXPIRED = 2, 3, 4, 1, 2

local function ttlOf(suf)
  return tonumber(string.sub(suf, 1, string.find(suf, ':', 1, true) - 1))
end

local function sessionOf(suf)
  return string.sub(suf, string.find(suf, ':', 1, true) + 1)
end

-- publish sends one event: a header of decimal fields, then the user ID and
-- the metadata, whose lengths the header gives.
local function publish(kind, reason, at, user, first, last, deadline, n, meta)
  redis.call(PUB, C, string.format('1,%d,%d,%d,%d,%d,%d,%d,%d,%d:',
    kind, reason, at, first, last, deadline, n, #user, #meta) .. user .. meta)
end

-- bump changes the records' version, the info hash's field "" (no user ID
-- is empty): "<server time when the hash was created>:<count of changes>",
-- so that a hash deleted and created again never repeats a version. (The
-- server's clock only tells incarnations apart; no deadline comes from
-- it.)
local function bump()
  local v = redis.call('HGET', H, '')
  local born, n = nil, 0
  if v then
    local i = string.find(v, ':', 1, true)
    born, n = string.sub(v, 1, i - 1), tonumber(string.sub(v, i + 1))
  else
    local t = redis.call('TIME')
    born = t[1] .. '.' .. t[2]
  end
  redis.call('HSET', H, '', born .. ':' .. (n + 1))
end

local function save(user, rec)
  redis.call('HSET', H, user, cmsgpack.pack(rec.first, rec.meta, rec.last, unpack(rec.sufs)))
  bump()
end

local function drop(user)
  redis.call('HDEL', H, user)
  bump()
end

local function load(user)
  local v = redis.call('HGET', H, user)
  if not v then return nil end
  local t = {cmsgpack.unpack(v)}
  local rec = {first = t[1], meta = t[2], last = t[3], sufs = {}}
  for i = 4, #t do rec.sufs[#rec.sufs + 1] = t[i] end
  return rec
end

-- settle loads user's record and removes its sessions that are due at now.
-- If none is left live, the user departs: it is removed and its Leave
-- (Expired, at its latest deadline) is published, and settle returns nil.
-- Otherwise it returns the record with only live sessions, marked dirty if
-- it lost any.
local function settle(user, pre)
  local rec = load(user)
  if not rec then return nil end
  local live, due = {}, 0
  for _, suf in ipairs(rec.sufs) do
    local sc = redis.call('ZSCORE', S, pre .. suf)
    if sc then
      sc = tonumber(sc)
      if sc > now then
        live[#live + 1] = suf
      else
        redis.call('ZREM', S, pre .. suf)
        if sc > due then due = sc end
        local seen = sc - ttlOf(suf)
        if seen > rec.last then rec.last = seen end
      end
    end
  end
  if #live > 0 then
    rec.dirty = #live ~= #rec.sufs
    rec.sufs = live
    return rec
  end
  drop(user)
  redis.call('ZREM', U, user)
  if due > 0 then
    publish(LEAVE, EXPIRED, due, user, rec.first, rec.last, due, 0, rec.meta)
  end
  return nil
end

-- summary returns the live sessions' count, latest deadline and latest
-- heartbeat.
local function summary(pre, rec)
  local dl, last = 0, rec.last
  for _, suf in ipairs(rec.sufs) do
    local sc = tonumber(redis.call('ZSCORE', S, pre .. suf))
    if sc > dl then dl = sc end
    local seen = sc - ttlOf(suf)
    if seen > last then last = seen end
  end
  return #rec.sufs, dl, last
end
`

// heartbeatScript creates or refreshes a session. ARGV[3] deadline,
// ARGV[4] user, ARGV[5] TTL in ms, ARGV[6] session, ARGV[7] "1" when
// ARGV[8] holds new metadata, ARGV[9] the keys' TTL in ms, ARGV[10] the
// room's cap on users and ARGV[11] the cap on a user's live sessions (0
// for none). It returns the event kind it published, or 0; or, having
// changed nothing, -1 when the user is absent and the room full, -2 when
// the session is new and the user has the most sessions allowed.
var heartbeatScript = redis.NewScript(prelude + `
local deadline, user, session = tonumber(ARGV[3]), ARGV[4], ARGV[6]
local pre, suf = #user .. ':' .. user, ARGV[5] .. ':' .. session
local cap = tonumber(ARGV[10])
if cap > 0 then
  local sc = redis.call('ZSCORE', U, user)
  if not (sc and tonumber(sc) > now) and redis.call('ZCOUNT', U, '(' .. now, '+inf') >= cap then
    return -1
  end
end
local scap = tonumber(ARGV[11])
if scap > 0 then
  local v = redis.call('HGET', H, user)
  if v then
    local t, live, mine = {cmsgpack.unpack(v)}, 0, false
    for i = 4, #t do
      local sc = redis.call('ZSCORE', S, pre .. t[i])
      if sc and tonumber(sc) > now then
        live = live + 1
        if sessionOf(t[i]) == session then mine = true end
      end
    end
    if not mine and live >= scap then return -2 end
  end
end
local rec = settle(user, pre)
local kind, old = 0, nil
if not rec then
  rec = {first = now, meta = '', last = now, sufs = {suf}, dirty = true}
  if ARGV[7] == '1' then rec.meta = ARGV[8] end
  kind = JOIN
else
  old = tonumber(redis.call('ZSCORE', U, user))
  local found = false
  for i = #rec.sufs, 1, -1 do
    local s = rec.sufs[i]
    if s == suf then
      found = true
    elseif sessionOf(s) == session then
      redis.call('ZREM', S, pre .. s)
      table.remove(rec.sufs, i)
      rec.dirty = true
    end
  end
  if not found then
    rec.sufs[#rec.sufs + 1] = suf
    rec.dirty = true
  end
  if now > rec.last then
    rec.last = now
    rec.dirty = true
  end
  if ARGV[7] == '1' and ARGV[8] ~= rec.meta then
    rec.meta = ARGV[8]
    rec.dirty = true
    kind = UPDATE
  end
end
redis.call('ZADD', S, deadline, pre .. suf)
if rec.dirty then save(user, rec) end
local n, dl, last = summary(pre, rec)
redis.call('ZADD', U, dl, user)
local ms = tonumber(ARGV[9])
for _, k in ipairs({S, U, H}) do
  if redis.call('PTTL', k) < ms then redis.call('PEXPIRE', k, ms) end
end
-- A deadline moved earlier is published too, so that every process's
-- expiry timer learns of it.
if kind == 0 and old and dl < old then kind = UPDATE end
if kind ~= 0 then
  publish(kind, 0, now, user, rec.first, last, dl, n, rec.meta)
end
return kind
`)

// leaveScript ends one session of a user, or all of them when ARGV[4] is
// empty. ARGV[3] is the user. It returns 1 if the user left, else 0 or,
// when ending a session moved the user's deadline earlier, that deadline,
// which it publishes in an Update with unchanged metadata.
var leaveScript = redis.NewScript(prelude + `
local user, session = ARGV[3], ARGV[4]
local pre = #user .. ':' .. user
local rec = settle(user, pre)
if not rec then return 0 end
local keep, dl = {}, 0
for _, suf in ipairs(rec.sufs) do
  local sc = tonumber(redis.call('ZSCORE', S, pre .. suf))
  local seen = sc - ttlOf(suf)
  if seen > rec.last then rec.last = seen end
  if session == '' or sessionOf(suf) == session then
    redis.call('ZREM', S, pre .. suf)
  else
    keep[#keep + 1] = suf
    if sc > dl then dl = sc end
  end
end
if #keep == 0 then
  drop(user)
  redis.call('ZREM', U, user)
  publish(LEAVE, LEFT, now, user, rec.first, rec.last, now, 0, rec.meta)
  return 1
end
if #keep ~= #rec.sufs or rec.dirty then
  local old = tonumber(redis.call('ZSCORE', U, user))
  rec.sufs = keep
  save(user, rec)
  redis.call('ZADD', U, dl, user)
  if old and dl < old then
    publish(UPDATE, 0, now, user, rec.first, rec.last, dl, #keep, rec.meta)
    return dl
  end
end
return 0
`)

// expireScript removes up to ARGV[3] sessions due at now, publishing a
// Leave (Expired) for each user that departs, in the order of departure.
// It returns {earliest pending deadline or 0, 1 if it stopped at the limit}.
var expireScript = redis.NewScript(prelude + `
local due = redis.call('ZRANGEBYSCORE', S, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local lastIdx, order = {}, {}
for i, m in ipairs(due) do
  local c = string.find(m, ':', 1, true)
  local user = string.sub(m, c + 1, c + tonumber(string.sub(m, 1, c - 1)))
  if not lastIdx[user] then order[#order + 1] = user end
  lastIdx[user] = i
end
table.sort(order, function(a, b) return lastIdx[a] < lastIdx[b] end)
for _, user in ipairs(order) do
  local pre = #user .. ':' .. user
  local rec = settle(user, pre)
  if rec then
    save(user, rec)
    local _, dl = summary(pre, rec)
    redis.call('ZADD', U, dl, user)
  end
end
-- Members without a record cannot be reported; drop them.
if #due > 0 then redis.call('ZREM', S, unpack(due)) end
local first = redis.call('ZRANGE', S, 0, 0, 'WITHSCORES')
local next = 0
if first[2] then next = tonumber(first[2]) end
local more = 0
if #due >= tonumber(ARGV[3]) then more = 1 end
return {next, more}
`)
