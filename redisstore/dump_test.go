package redisstore_test

import (
	"context"
	"encoding/hex"
	stdmaps "maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestDecodeDump checks decodeDump against ZRANGE WITHSCORES on sets of
// both encodings, with members and scores of every size the formats
// encode differently, compressed and not.
func TestDecodeDump(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, c)

	intLike := []string{"0", "7", "127", "128", "-1", "-4096", "4095", "4096", "-32768", "32767",
		"8388607", "-8388608", "2147483647", "-2147483648", "9223372036854775807", "-9223372036854775808", "007", "+1", "1e3"}
	scores := []float64{0, 1, 127, 128, -1, -4096, 4095, 4096, 32767, 40000, 8388607, 8388608,
		1 << 31, 1 << 40, 1_733_356_800_123, -1_733_356_800_123, 1.5, -2.25}
	small := map[string]float64{}
	for i, m := range intLike {
		small[m] = scores[i%len(scores)]
	}
	for i, n := range []int{1, 20, 63, 64} {
		small[strings.Repeat("m", n)] = scores[(i+5)%len(scores)]
	}
	for i := range 40 {
		small[strconv.Itoa(len(strconv.Itoa(i))+5)+":user-"+strconv.Itoa(i)+"60000:tab"] = float64(1_733_356_800_000 + i)
	}
	same := map[string]float64{} // compresses well
	for i := range 100 {
		same[strings.Repeat("a", 40)+strconv.Itoa(i)] = 1_733_356_800_000
	}
	large := stdmaps.Clone(small)
	large[strings.Repeat("long", 2000)] = 3 // compressed on its own
	for i := range 300 {
		large["u"+strconv.Itoa(i)] = float64(i) * 1.25
	}

	for _, tc := range []struct {
		name     string
		set      map[string]float64
		encoding string
	}{
		{"listpack", small, "listpack"},
		{"compressed", same, "listpack"},
		{"skiplist", large, "skiplist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := prefix + ":" + tc.name
			var zs []redis.Z
			for m, s := range tc.set {
				zs = append(zs, redis.Z{Score: s, Member: m})
			}
			if err := c.ZAdd(ctx, key, zs...).Err(); err != nil {
				t.Fatal(err)
			}
			if enc := c.ObjectEncoding(ctx, key).Val(); enc != tc.encoding {
				t.Fatalf("encoding %q, want %q", enc, tc.encoding)
			}
			p, err := c.Dump(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			got, ok := redisstore.DecodeDump(p)
			if !ok {
				t.Fatalf("not decoded: %x", p[:min(len(p), 64)])
			}
			want := map[string]int64{}
			for _, z := range c.ZRangeWithScores(ctx, key, 0, -1).Val() {
				want[z.Member.(string)] = int64(z.Score)
			}
			if !stdmaps.Equal(got, want) {
				t.Fatalf("decoded %d members, want %d; differences: %v", len(got), len(want), diff(got, want))
			}
		})
	}
}

// TestDecodeDumpLongMembers checks the sizes at which a listpack entry's
// trailing length grows a byte, on a server that keeps long members in
// listpacks.
func TestDecodeDumpLongMembers(t *testing.T) {
	srv := startServer(t, "--zset-max-listpack-value", "70000", "--zset-max-listpack-entries", "1000")
	c := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer c.Close()
	ctx := context.Background()
	var zs []redis.Z
	for _, around := range []int{127, 16383, 2097151 / 64} { // entry sizes; the last stays below 2 MiB
		for n := around - 6; n <= around+2; n++ {
			m := []byte(strings.Repeat("0123456789abcdef", n/16+1)[:n])
			m[0] = byte('A' + len(zs)%26) // no two alike
			zs = append(zs, redis.Z{Score: float64(len(zs)), Member: string(m)})
		}
	}
	require.NoError(t, c.ZAdd(ctx, "long", zs...).Err())
	require.Equal(t, "listpack", c.ObjectEncoding(ctx, "long").Val())
	p, err := c.Dump(ctx, "long").Result()
	require.NoError(t, err)
	got, ok := redisstore.DecodeDump(p)
	require.True(t, ok, "not decoded")
	want := map[string]int64{}
	for _, z := range zs {
		want[z.Member.(string)] = int64(z.Score)
	}
	require.True(t, stdmaps.Equal(got, want), "differences: %v", diff(got, want))
}

func diff(got, want map[string]int64) []string {
	var d []string
	for m, s := range want {
		if g, ok := got[m]; !ok || g != s {
			d = append(d, strconv.Quote(m[:min(len(m), 20)])+": "+strconv.FormatInt(g, 10)+" want "+strconv.FormatInt(s, 10))
		}
	}
	return d
}

// TestListReadsByDump checks that List decodes this server's DUMP replies,
// on both of its paths, and that what it reads agrees with ZRANGE.
func TestListReadsByDump(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	s := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)))
	defer s.Close()
	now := time.UnixMilli(1_900_000_000_000)
	beats := []presence.Beat{
		{Room: "r", UserID: "solo", Now: now, Deadline: now.Add(time.Minute)},
		{Room: "r", UserID: "twice", SessionID: "a", Now: now, Deadline: now.Add(time.Minute)},
		{Room: "r", UserID: "twice", SessionID: "b", Now: now, Deadline: now.Add(2 * time.Minute)},
		{Room: "r", UserID: "12345", Now: now, Deadline: now.Add(time.Second)},
	}
	for _, b := range beats {
		if err := s.Heartbeat(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the first List reads atomically, the second by version
		vs, err := s.List(ctx, "r", now)
		if err != nil {
			t.Fatal(err)
		}
		presence.SortViewers(vs)
		var got []string
		for _, v := range vs {
			got = append(got, v.UserID+"/"+strconv.Itoa(v.Sessions)+"/"+strconv.FormatInt(v.Deadline.Sub(now).Milliseconds(), 10))
		}
		if want := "12345/1/1000 solo/1/60000 twice/2/120000"; strings.Join(got, " ") != want {
			t.Fatalf("List: %q, want %q", got, want)
		}
		if !s.ReadsByDump() {
			t.Fatal("List fell back to ZRANGE")
		}
	}
}

// dumpSeed is the DUMP of a small sorted set with members and scores of
// several encodings, LZF-compressed: from Redis 7.0.
const dumpSeed = "11c3404c405208520000000a00dffd0220021c81780283312e3504070105019531323a68622d757365722d3030303136200410303a16f400c81d9493010000098c313a618014057461620df47ba0170109ff0a009dc25e7af3458f18"

// FuzzDecodeDump checks that no payload makes decodeDump fail other than
// by saying so.
func FuzzDecodeDump(f *testing.F) {
	seed, err := hex.DecodeString(dumpSeed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	if zs, ok := redisstore.DecodeDump(string(seed)); !ok || len(zs) != 5 {
		f.Fatalf("seed decoded to %v, %v", zs, ok)
	}
	f.Add([]byte{5, 1, 1, 'a', 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		zs, ok := redisstore.DecodeDump(string(p))
		if !ok && zs != nil {
			t.Fatal("members returned with a failure")
		}
	})
}
