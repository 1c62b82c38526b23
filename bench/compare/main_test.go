package main

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every workload briefly and checks that each cell produced
// a positive figure and that the report renders. It asserts nothing about
// speed. Without Redis it runs the memory cells only, unless
// PRESENCE_REQUIRE_REDIS=1, which makes a missing Redis a failure.
func TestSmoke(t *testing.T) {
	cfg := defaultConfig()
	cfg.duration = 50 * time.Millisecond
	cfg.expireViewers = 2_000
	cfg.footprintViewers = 20_000
	cfg.log = t.Output()

	withRedis := true
	if e, err := newEnv(context.Background(), cfg.redisURL); err != nil {
		if os.Getenv("PRESENCE_REQUIRE_REDIS") == "1" {
			t.Fatalf("%v (PRESENCE_REQUIRE_REDIS=1)", err)
		}
		t.Logf("%v: running the memory cells only; set REDIS_URL or start redis-server", err)
		cfg.redisURL, withRedis = "off", false
	} else {
		e.close(context.Background())
	}

	var out strings.Builder
	rep, err := runAll(cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())

	systems := map[string]bool{}
	for _, r := range rep.throughput {
		systems[r.place+" "+r.system] = true
		if !(r.opsPerSec > 0) {
			t.Errorf("%s %s %d callers %s: %v ops/s", r.workload, r.place, r.callers, r.system, r.opsPerSec)
		}
	}
	for _, r := range rep.bytes {
		if !(r.value() > 0) {
			t.Errorf("bytes %s %s %s: %v", r.layout, r.place, r.system, r.value())
		}
	}
	for _, r := range rep.expire {
		if r.cost[0] <= 0 || r.cost[1] <= 0 || math.IsInf(r.ratio(), 0) {
			t.Errorf("expire %s: %v", r.system, r.cost)
		}
	}

	want := []string{"memory memstore", "memory Presence/memstore", "memory centrifuge"}
	if withRedis {
		want = append(want, "redis redisstore", "redis Presence/redisstore", "redis centrifuge", "redis go-redis")
	}
	for _, s := range want {
		if !systems[s] {
			t.Errorf("no throughput row for %s", s)
		}
	}
	wantRows, wantExpire := 9, 1
	if withRedis {
		wantRows, wantExpire = 26, 2
	}
	if len(rep.throughput) != wantRows || len(rep.expire) != wantExpire {
		t.Errorf("%d throughput and %d expiry rows, want %d and %d", len(rep.throughput), len(rep.expire), wantRows, wantExpire)
	}
	for _, s := range []string{"THROUGHPUT", "BYTES PER PRESENCE", "EXPIRY", "targets:"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q", s)
		}
	}
}
