package redisstore

import "github.com/redis/go-redis/v9"

// This file holds every Lua script of the store. Each script takes the
// room's keys in roomKeys.all order: KEYS[1] sessions zset, KEYS[2] users
// zset, KEYS[3] info hash, KEYS[4] channel. ARGV[1] is the publish command
// (PUBLISH or SPUBLISH) and ARGV[2] the caller's now in Unix milliseconds;
// times never come from the server's clock.
//
// The info hash maps a user ID to cmsgpack(firstSeen, meta, lastSeen -
// firstSeen, suffix...): the difference takes a byte or a few where a time
// takes nine, and each suffix names one session ("<ttl>:<session>"). With
// pre = "<len(user)>:<user>", a user with one session is the member pre ..
// suffix of the users zset, scored by the session's deadline, and has
// nothing in the sessions zset; a user with several is the member pre of
// the users zset, scored by its latest deadline, and each of its sessions
// is the member pre .. suffix of the sessions zset. Most users have one
// session, so most refreshes are one ZADD and most presences one zset
// entry. Every change to a user's set of sessions rewrites its record, so
// a reader that sees the record knows where the sessions are.
//
// A session's last heartbeat is its deadline minus its TTL, so a refresh
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
  redis.call('HSET', H, user, cmsgpack.pack(rec.first, rec.meta, rec.last - rec.first, unpack(rec.sufs)))
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
  local rec = {first = t[1], meta = t[2], last = t[1] + t[3], sufs = {}}
  for i = 4, #t do rec.sufs[#rec.sufs + 1] = t[i] end
  return rec
end

-- deadlines returns the deadline of each of sufs, the sessions of the user
-- whose members start with pre, in the same order: nil for a session with
-- no member.
local function deadlines(pre, sufs)
  local dls = {}
  if #sufs == 1 then
    dls[1] = tonumber(redis.call('ZSCORE', U, pre .. sufs[1]))
  else
    for i, suf in ipairs(sufs) do
      dls[i] = tonumber(redis.call('ZSCORE', S, pre .. suf))
    end
  end
  return dls
end

-- unplace removes the members of a user with sessions sufs.
local function unplace(pre, sufs)
  if #sufs == 1 then
    redis.call('ZREM', U, pre .. sufs[1])
  elseif #sufs > 1 then
    redis.call('ZREM', U, pre)
    for _, suf in ipairs(sufs) do redis.call('ZREM', S, pre .. suf) end
  end
end

-- place adds the members of a user with sessions sufs, whose deadlines are
-- dls, and returns the latest deadline.
local function place(pre, sufs, dls)
  if #sufs == 1 then
    redis.call('ZADD', U, dls[1], pre .. sufs[1])
    return dls[1]
  end
  local dl = 0
  for i, suf in ipairs(sufs) do
    redis.call('ZADD', S, dls[i], pre .. suf)
    if dls[i] > dl then dl = dls[i] end
  end
  redis.call('ZADD', U, dl, pre)
  return dl
end

-- extend makes the room's keys live at least ms milliseconds more. A zset
-- emptied and filled again in one script has lost its TTL, so every
-- script that writes members ends with it.
local function extend(ms)
  for _, k in ipairs({S, U, H}) do
    if redis.call('PTTL', k) < ms then redis.call('PEXPIRE', k, ms) end
  end
end

-- userOf returns the user ID in a member of either zset, or nil for a
-- member no script writes.
local function userOf(m)
  local c = string.find(m, ':', 1, true)
  local n = c and tonumber(string.sub(m, 1, c - 1))
  if not n or c + n > #m then return nil end
  return string.sub(m, c + 1, c + n)
end

local function latest(dls)
  local dl = 0
  for _, d in ipairs(dls) do if d > dl then dl = d end end
  return dl
end

-- settle takes user's record (nil if absent) and the deadlines of its
-- sessions, and removes the sessions that are due at now or have no
-- member. If none is left live, the user departs: it is removed and its
-- Leave (Expired, at its latest deadline) is published, and settle returns
-- nil. Otherwise it returns the record with only live sessions and their
-- deadlines in rec.dls, marked dirty if it lost any.
local function settle(user, pre, rec, dls)
  if not rec then return nil end
  local live, ldl, due = {}, {}, 0
  for i, suf in ipairs(rec.sufs) do
    local sc = dls[i]
    if sc then
      if sc > now then
        live[#live + 1] = suf
        ldl[#ldl + 1] = sc
      else
        if sc > due then due = sc end
        local seen = sc - ttlOf(suf)
        if seen > rec.last then rec.last = seen end
      end
    end
  end
  if #live == #rec.sufs then
    rec.dls = dls
    return rec
  end
  unplace(pre, rec.sufs)
  if #live == 0 then
    drop(user)
    if due > 0 then
      publish(LEAVE, EXPIRED, due, user, rec.first, rec.last, due, 0, rec.meta)
    end
    return nil
  end
  place(pre, live, ldl)
  rec.sufs, rec.dls, rec.dirty = live, ldl, true
  return rec
end

-- lastSeen returns the user's latest heartbeat.
local function lastSeen(rec)
  local last = rec.last
  for i, suf in ipairs(rec.sufs) do
    local seen = rec.dls[i] - ttlOf(suf)
    if seen > last then last = seen end
  end
  return last
end
`

// heartbeatScript creates or refreshes a session. ARGV[3] deadline,
// ARGV[4] user, ARGV[5] TTL in ms, ARGV[6] session, ARGV[7] "1" when
// ARGV[8] holds new metadata, ARGV[9] the keys' TTL in ms, ARGV[10] the
// room's cap on users and ARGV[11] the cap on a user's live sessions (0
// for none). It returns {the event kind it published or 0, the user's
// live sessions}; or, having changed nothing, {-1, 0} when the user is
// absent and the room full, {-2, 0} when the session is new and the user
// has the most sessions allowed.
var heartbeatScript = redis.NewScript(prelude + `
local deadline, user, session = tonumber(ARGV[3]), ARGV[4], ARGV[6]
local pre, suf = #user .. ':' .. user, ARGV[5] .. ':' .. session
local rec = load(user)
local dls = rec and deadlines(pre, rec.sufs) or {}
local cap, scap = tonumber(ARGV[10]), tonumber(ARGV[11])
local present = false
if rec then
  local live, mine = 0, false
  for i, s in ipairs(rec.sufs) do
    if dls[i] and dls[i] > now then
      live = live + 1
      if sessionOf(s) == session then mine = true end
    end
  end
  present = live > 0
  if scap > 0 and not mine and live >= scap then return {-2, 0} end
end
if cap > 0 and not present and redis.call('ZCOUNT', U, '(' .. now, '+inf') >= cap then
  return {-1, 0}
end
rec = settle(user, pre, rec, dls)
local kind, old = 0, nil
if not rec then
  rec = {first = now, meta = '', last = now, sufs = {suf}, dls = {deadline}, dirty = true}
  if ARGV[7] == '1' then rec.meta = ARGV[8] end
  place(pre, rec.sufs, rec.dls)
  kind = JOIN
else
  old = latest(rec.dls)
  local sufs, nd, found, changed = {}, {}, false, false
  for i, s in ipairs(rec.sufs) do
    if s == suf then
      found = true
      sufs[#sufs + 1], nd[#nd + 1] = s, deadline
    elseif sessionOf(s) == session then
      changed = true -- the session's TTL changed: it gets a new member
    else
      sufs[#sufs + 1], nd[#nd + 1] = s, rec.dls[i]
    end
  end
  if not found then
    sufs[#sufs + 1], nd[#nd + 1] = suf, deadline
    changed = true
  end
  if changed then
    unplace(pre, rec.sufs)
    place(pre, sufs, nd)
    rec.dirty = true
  elseif #sufs == 1 then
    redis.call('ZADD', U, deadline, pre .. suf)
  else
    redis.call('ZADD', S, deadline, pre .. suf)
    redis.call('ZADD', U, latest(nd), pre)
  end
  rec.sufs, rec.dls = sufs, nd
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
if rec.dirty then save(user, rec) end
local dl = latest(rec.dls)
extend(tonumber(ARGV[9]))
-- A deadline moved earlier is published too, so that every process's
-- expiry timer learns of it.
if kind == 0 and old and dl < old then kind = UPDATE end
if kind ~= 0 then
  publish(kind, 0, now, user, rec.first, lastSeen(rec), dl, #rec.sufs, rec.meta)
end
return {kind, #rec.sufs}
`)

// leaveScript ends one session of a user, or all of them when ARGV[4] is
// empty. ARGV[3] is the user, ARGV[5] the grace in ms that the room's keys
// outlive the latest deadline they hold. It returns 1 if the user left, else 0 or,
// when ending a session moved the user's deadline earlier, that deadline,
// which it publishes in an Update with unchanged metadata.
var leaveScript = redis.NewScript(prelude + `
local user, session = ARGV[3], ARGV[4]
local pre = #user .. ':' .. user
local rec = load(user)
rec = settle(user, pre, rec, rec and deadlines(pre, rec.sufs) or {})
if not rec then return 0 end
rec.last = lastSeen(rec)
local keep, kdl = {}, {}
for i, suf in ipairs(rec.sufs) do
  if not (session == '' or sessionOf(suf) == session) then
    keep[#keep + 1], kdl[#kdl + 1] = suf, rec.dls[i]
  end
end
if #keep == 0 then
  unplace(pre, rec.sufs)
  drop(user)
  publish(LEAVE, LEFT, now, user, rec.first, rec.last, now, 0, rec.meta)
  return 1
end
if #keep ~= #rec.sufs or rec.dirty then
  local old = latest(rec.dls)
  if #keep ~= #rec.sufs then
    unplace(pre, rec.sufs)
    place(pre, keep, kdl)
  end
  rec.sufs, rec.dls = keep, kdl
  save(user, rec)
  local dl = latest(kdl)
  extend(dl - now + tonumber(ARGV[5]))
  if dl < old then
    publish(UPDATE, 0, now, user, rec.first, rec.last, dl, #keep, rec.meta)
    return dl
  end
end
return 0
`)

// expireScript removes up to ARGV[3] members of each zset due at now,
// publishing a Leave (Expired) for each user that departs, in the order of
// departure. ARGV[4] is the grace in ms that the room's keys outlive the
// latest deadline they hold. It returns {earliest pending deadline or 0, 1
// if it stopped at the limit}.
var expireScript = redis.NewScript(prelude + `
local limit = tonumber(ARGV[3])
local dueU = redis.call('ZRANGEBYSCORE', U, '-inf', now, 'LIMIT', 0, limit)
local dueS = redis.call('ZRANGEBYSCORE', S, '-inf', now, 'LIMIT', 0, limit)
-- Users depart in the order of their members in the users zset, which is
-- the order of their latest deadlines.
local seen, order = {}, {}
for _, due in ipairs({dueU, dueS}) do
  for _, m in ipairs(due) do
    local user = userOf(m)
    if user and not seen[user] then
      seen[user] = true
      order[#order + 1] = user
    end
  end
end
local kept, dl = {}, 0
for _, user in ipairs(order) do
  local pre = #user .. ':' .. user
  local rec = load(user)
  rec = settle(user, pre, rec, rec and deadlines(pre, rec.sufs) or {})
  if rec then
    if rec.dirty then save(user, rec) end
    -- A refresh of a user with several sessions moves the session's
    -- deadline before the user's, so the user's member may be due while
    -- a session is live: set it again.
    if #rec.sufs > 1 then
      redis.call('ZADD', U, latest(rec.dls), pre)
      kept[pre] = true
    end
    if latest(rec.dls) > dl then dl = latest(rec.dls) end
  end
end
-- Every other member found due is gone by now, or has no record and
-- cannot be reported, or no script wrote it: drop it.
for _, due in ipairs({{U, dueU}, {S, dueS}}) do
  local gone = {}
  for _, m in ipairs(due[2]) do
    if not kept[m] then gone[#gone + 1] = m end
  end
  if #gone > 0 then redis.call('ZREM', due[1], unpack(gone)) end
end
if dl > 0 then extend(dl - now + tonumber(ARGV[4])) end
local next = 0
for _, k in ipairs({U, S}) do
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if first[2] and (next == 0 or tonumber(first[2]) < next) then next = tonumber(first[2]) end
end
local more = 0
if #dueU >= limit or #dueS >= limit then more = 1 end
return {next, more}
`)
