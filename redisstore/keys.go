package redisstore

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// This file is the whole key layout; the package documentation describes it.

// roomKeys are the Redis keys of one room. They share one hash tag, so a
// room lives in one Cluster slot.
type roomKeys struct {
	sessions string // zset: session member → session deadline (Unix ms)
	users    string // zset: user ID → the user's latest deadline (Unix ms)
	info     string // hash: user ID → first-seen time, metadata, sessions
	channel  string // pub/sub channel of the room's changes
}

// all returns the keys in the order the scripts take them.
func (k *roomKeys) all() []string {
	return []string{k.sessions, k.users, k.info, k.channel}
}

// escapePrefix makes a host's key prefix safe to put before a hash tag: it
// escapes '%', '{' and '}' the way URLs do, so the prefix can never open or
// close a tag and two prefixes never escape to the same string.
func escapePrefix(p string) string {
	if !strings.ContainsAny(p, "%{}") {
		return p
	}
	return strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D").Replace(p)
}

var base64RawURL = base64.RawURLEncoding

// tag returns the room's hash tag, braces included. The room ID is encoded
// with unpadded URL-safe base64, whose alphabet has no braces, so no room
// ID can end the tag early or share a tag with another room.
func tag(room string) string {
	return "{" + base64RawURL.EncodeToString([]byte(room)) + "}"
}

// keysFor returns the keys of room under an escaped prefix.
func keysFor(prefix, room string) roomKeys {
	base := prefix + ":" + tag(room) + ":"
	return roomKeys{
		sessions: base + "s",
		users:    base + "u",
		info:     base + "i",
		channel:  base + "c",
	}
}

// memberPrefix is what every session member of user starts with: the
// user's length in decimal, a colon, and the user ID's bytes.
func memberPrefix(user string) string {
	return strconv.Itoa(len(user)) + ":" + user
}

// memberSuffix identifies one session of a user: the session's TTL in
// milliseconds, a colon, and the session ID's bytes. The TTL lets reads
// derive the session's last heartbeat (deadline - TTL) without storing it.
func memberSuffix(ttl int64, session string) string {
	return strconv.FormatInt(ttl, 10) + ":" + session
}

// member is a session's member in the sessions zset. The length prefix
// makes the encoding injective: the user ends where its length says, the
// TTL ends at the next colon, and the session is the rest.
func member(user string, ttl int64, session string) string {
	return memberPrefix(user) + memberSuffix(ttl, session)
}

// splitMember splits a member of either zset into the user ID and the
// session suffix, which is empty for the member that stands for a user
// with several sessions in the users zset. It reports false for a member
// that no script writes.
func splitMember(m string) (user, suffix string, ok bool) {
	n, i := 0, 0
	for ; i < len(m) && m[i] != ':'; i++ {
		if m[i] < '0' || m[i] > '9' || n > len(m) {
			return "", "", false
		}
		n = n*10 + int(m[i]-'0')
	}
	if i == 0 || i == len(m) || len(m)-i-1 < n {
		return "", "", false
	}
	return m[i+1 : i+1+n], m[i+1+n:], true
}
