package redisstore

import (
	"strconv"
	"strings"
	"testing"

	"github.com/presence-go/presence"
)

// hashTag returns the part of key Redis Cluster hashes: the text between
// the first '{' and the first '}' after it, if non-empty, else the key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// parseKey inverts keysFor: it returns the escaped prefix and the room's
// tag.
func parseKey(key string) (prefix, tag string, ok bool) {
	i := strings.Index(key, ":{")
	j := strings.LastIndex(key, "}:")
	if i < 0 || j < i {
		return "", "", false
	}
	return key[:i], key[i+2 : j], true
}

// parseMember inverts member.
func parseMember(m string) (user string, ttl int64, session string, ok bool) {
	n, rest, ok := strings.Cut(m, ":")
	if !ok {
		return "", 0, "", false
	}
	l, err := strconv.Atoi(n)
	if err != nil || l < 0 || l > len(rest) || strconv.Itoa(l) != n {
		return "", 0, "", false
	}
	user, rest = rest[:l], rest[l:]
	t, session, ok := strings.Cut(rest, ":")
	if !ok {
		return "", 0, "", false
	}
	ttl, err = strconv.ParseInt(t, 10, 64)
	if err != nil || strconv.FormatInt(ttl, 10) != t {
		return "", 0, "", false
	}
	return user, ttl, session, true
}

func unescapePrefix(p string) string {
	return strings.NewReplacer("%25", "%", "%7B", "{", "%7D", "}").Replace(p)
}

func untag(inner string) (string, bool) {
	if strings.ContainsAny(inner, "{}") {
		return "", false
	}
	b, err := base64RawURL.DecodeString(inner)
	return string(b), err == nil
}

// FuzzKeys checks that the layout is injective (every key and member
// decodes back to the one prefix, room, user, TTL and session it was made
// of) and that every key of a room hashes to the room's own tag, which
// holds no brace, whatever the IDs and prefix.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{"a:b", "{x}", "}", "{", "*", "a\nb", "\x00", "\xff\xfe", "%7B", "%", "1:a", ""} {
		f.Add("presence", s, s, s, int64(10000))
		f.Add(s, "r", s, "", int64(1))
	}
	f.Fuzz(func(t *testing.T, prefix, room, user, session string, ttl int64) {
		if room == "" || user == "" || ttl <= 0 {
			t.Skip("IDs are non-empty and TTLs positive")
		}
		p := escapePrefix(prefix)
		if strings.ContainsAny(p, "{}") {
			t.Fatalf("escaped prefix %q has a brace", p)
		}
		if unescapePrefix(p) != prefix {
			t.Fatalf("prefix %q escapes to %q, which does not invert", prefix, p)
		}
		k := keysFor(p, room)
		tg := tag(room)
		inner := tg[1 : len(tg)-1]
		if got, ok := untag(inner); !ok || got != room {
			t.Fatalf("tag %q of room %q decodes to %q, %v", tg, room, got, ok)
		}
		seen := map[string]bool{}
		for _, key := range k.all() {
			if seen[key] {
				t.Fatalf("keys of room %q collide: %+v", room, k)
			}
			seen[key] = true
			if hashTag(key) != inner {
				t.Fatalf("key %q of room %q hashes %q, want %q", key, room, hashTag(key), inner)
			}
			gotPrefix, gotTag, ok := parseKey(key)
			if !ok || gotPrefix != p || gotTag != inner {
				t.Fatalf("key %q parses to %q %q %v", key, gotPrefix, gotTag, ok)
			}
		}
		m := member(user, ttl, session)
		u, tt, s, ok := parseMember(m)
		if !ok || u != user || tt != ttl || s != session {
			t.Fatalf("member %q of (%q, %d, %q) parses to (%q, %d, %q, %v)", m, user, ttl, session, u, tt, s, ok)
		}
		if m != memberPrefix(user)+memberSuffix(ttl, session) {
			t.Fatalf("member %q does not split into prefix and suffix", m)
		}
	})
}

// TestScriptConstants checks that the numbers the scripts publish are the
// presence package's.
func TestScriptConstants(t *testing.T) {
	want := "local JOIN, UPDATE, LEAVE, LEFT, EXPIRED = " + strings.Join([]string{
		strconv.Itoa(int(presence.Join)), strconv.Itoa(int(presence.Update)), strconv.Itoa(int(presence.Leave)),
		strconv.Itoa(int(presence.Left)), strconv.Itoa(int(presence.Expired)),
	}, ", ")
	if !strings.Contains(prelude, want) {
		t.Fatalf("scripts do not declare %q", want)
	}
}

func TestDecodeEvent(t *testing.T) {
	ev, ok := decodeEvent("r", "1,4,2,30,10,20,30,0,5,2:aliceAB")
	if !ok || ev.Kind != presence.Leave || ev.Reason != presence.Expired || ev.Viewer.UserID != "alice" ||
		string(ev.Viewer.Meta) != "AB" || ev.Time.UnixMilli() != 30 || ev.Viewer.FirstSeen.UnixMilli() != 10 ||
		ev.Viewer.LastSeen.UnixMilli() != 20 || ev.Viewer.Deadline.UnixMilli() != 30 || ev.Room != "r" {
		t.Fatalf("decodeEvent = %+v, %v", ev, ok)
	}
	ev, ok = decodeEvent("r", "1,2,0,1,1,1,2,1,3,0:a:b")
	if !ok || ev.Kind != presence.Join || ev.Viewer.UserID != "a:b" || ev.Viewer.Meta != nil || ev.Viewer.Sessions != 1 {
		t.Fatalf("decodeEvent = %+v, %v", ev, ok)
	}
	for _, bad := range []string{
		"", ":", "1", "2,2,0,1,1,1,2,1,1,0:a", "1,2,0,1,1,1,2,1,1,0:ab", "1,2,0,1,1,1,2,1,2,0:a",
		"1,5,0,1,1,1,2,1,1,0:a", "1,4,0,1,1,1,2,1,1,0:a", "1,2,1,1,1,1,2,1,1,0:a", "1,2,0,1,1,1,2,1,0,1:a",
		"1,2,0,1,1,1,2,1,-1,2:a", "1,2,0,1,1,1,2,1,1:a", "1,2,0,1,1,1,2,1,1,0,0:a", "1,2,0,x,1,1,2,1,1,0:a",
		"1,2,0,1,1,1,2,1,9223372036854775807,9223372036854775807:a", "1,2,0,1,1,1,2,99999999999,1,0:a",
	} {
		if ev, ok := decodeEvent("r", bad); ok {
			t.Errorf("decodeEvent(%q) = %+v, want failure", bad, ev)
		}
	}
}

// FuzzDecodeEvent checks that no payload makes decodeEvent panic or yield
// an event without a user.
func FuzzDecodeEvent(f *testing.F) {
	f.Add("1,4,2,30,10,20,30,0,5,2:aliceAB")
	f.Add("1,2,0,1,1,1,2,1,3,0:a:b")
	f.Fuzz(func(t *testing.T, p string) {
		ev, ok := decodeEvent("r", p)
		if ok && ev.Viewer.UserID == "" {
			t.Fatalf("decoded an event without a user from %q", p)
		}
	})
}

// FuzzDecodeRecord checks that no record, however malformed, makes the
// decoder panic.
func FuzzDecodeRecord(f *testing.F) {
	f.Add("\xcf\x00\x00\x01\x8d\x00\x00\x00\x00\xa1m\xcf\x00\x00\x01\x8d\x00\x00\x00\x00\xa6" + "1000:s")
	f.Add("\x01\xa0\x02")
	f.Add("\xdb\xff\xff\xff\xff")
	f.Fuzz(func(t *testing.T, v string) {
		r, err := decodeRecord(v, nil)
		if err == nil && len(r.sufs) > len(v) {
			t.Fatal("more suffixes than bytes")
		}
	})
}
