// Command compare measures the presence stores against
// github.com/centrifugal/centrifuge's presence managers and a plain go-redis
// baseline, running the same workloads on each, and prints throughput,
// ratios and whether each performance target is met.
//
// It lives in its own module so that the presence library never depends on
// the peer library. Run it from this directory:
//
//	go run . -duration 2s
//
// Systems under test:
//
//	memstore, redisstore    our stores, through the presence.Store interface
//	                        (like for like with the peers' managers)
//	Presence/memstore,      the public presence.Presence path, for heartbeats
//	Presence/redisstore
//	centrifuge              MemoryPresenceManager and RedisPresenceManager
//	go-redis                one ZADD per heartbeat, ZRANGE for list, ZCARD
//	                        for count, ZREM for leave: a floor, not a
//	                        presence implementation
//
// Workloads (every system gets the same rooms, users, callers and duration):
//
//	heartbeat   refreshes of random viewers among 10,000 in 100 rooms; in
//	            memory at GOMAXPROCS callers, over Redis at 1 and 64
//	list        List of a 100-viewer room (centrifuge: Presence)
//	count       Count of a 100-viewer room (centrifuge: PresenceStats)
//	churn       a new viewer joins a room and leaves it again; one op is
//	            the pair (centrifuge: AddPresence and RemovePresence)
//	bytes       memory per presence at 100,000 viewers, in 1,000 rooms and
//	            in one room: Go heap growth after GC for the memory stores
//	            (the callers' ID strings exist before and are not counted;
//	            centrifuge gets a new ClientInfo per AddPresence, as its
//	            Client passes, and it counts), growth of INFO memory
//	            used_memory for Redis (with the Go heap growth beside it)
//	expire      the cost of Expire when 1% of 1,000,000 viewers are due
//	            against when all are; both layouts put the viewers in
//	            rooms of equal size with the due ones spread over every
//	            room. memstore: 10,000 rooms of 100. redisstore expires
//	            only rooms with a subscription, and each subscription
//	            holds a connection, so it uses 100 subscribed rooms of
//	            10,000 viewers (-expire-viewers scales both).
//
// In memory the workloads run at GOMAXPROCS callers; over Redis, reads and
// churn run at 64. Each cell runs for -duration, -repeat times, and the
// median is reported; the runs of one workload alternate between systems
// so that background noise hits them alike. Ratios are ours divided by
// theirs (for bytes and expiry, lower is better). allocs/op counts every
// heap allocation in the process during a cell, divided by its ops. For the
// Redis cells, "Redis CPU/op" is the server's used_cpu_user+used_cpu_sys
// growth during the cell divided by its ops; it includes any other client
// of a shared server.
//
// Flags:
//
//	-duration d        time per measured cell (default 2s)
//	-repeat n          runs per cell; the median is reported (default 1)
//	-run regexp        only workloads whose name matches, e.g. "heartbeat|list"
//	-redis url         Redis to use (default $REDIS_URL or redis://127.0.0.1:6379/0);
//	                   "" or "off" skips every Redis cell
//	-expire-viewers n  viewers in the expiry workload (default 1,000,000)
//	-footprint-viewers n  viewers in the bytes workload (default 100,000)
//	-cpuprofile file   write a CPU profile of the whole run
//	-memprofile file   write an allocation profile at the end of the run
//
// The harness writes only keys under a random "presence-bench-" prefix and
// deletes them when it is done; it never flushes or reconfigures the server.
// Redis memory is measured on the whole server, so other clients writing to
// it at the same time make that figure noisy.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime/pprof"
	"time"
)

func main() {
	cfg := defaultConfig()
	flag.DurationVar(&cfg.duration, "duration", cfg.duration, "time per measured cell")
	flag.IntVar(&cfg.repeat, "repeat", cfg.repeat, "runs per cell; the median is reported")
	run := flag.String("run", "", "only workloads whose name matches this regexp")
	flag.StringVar(&cfg.redisURL, "redis", cfg.redisURL, `Redis URL; "" or "off" skips the Redis cells`)
	flag.IntVar(&cfg.expireViewers, "expire-viewers", cfg.expireViewers, "viewers in the expiry workload")
	flag.IntVar(&cfg.footprintViewers, "footprint-viewers", cfg.footprintViewers, "viewers in the bytes workload")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file`")
	memprofile := flag.String("memprofile", "", "write an allocation profile to `file`")
	flag.Parse()

	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fatal(err)
		}
		cfg.match = re.MatchString
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	start := time.Now()
	_, err := runAll(cfg, os.Stdout)
	if *memprofile != "" {
		if err := writeProfile(*memprofile, "allocs"); err != nil {
			fatal(err)
		}
	}
	if err != nil {
		pprof.StopCPUProfile()
		fatal(err)
	}
	fmt.Printf("\ntotal time %v\n", time.Since(start).Round(time.Second))
}

func writeProfile(name, profile string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(profile).WriteTo(f, 0)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}
