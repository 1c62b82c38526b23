package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// config is what the flags set.
type config struct {
	duration         time.Duration
	repeat           int
	redisURL         string
	expireViewers    int
	footprintViewers int
	match            func(workload string) bool // nil runs every workload
	log              io.Writer                  // progress; nil is silent
}

func defaultConfig() config {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	return config{
		duration:         2 * time.Second,
		repeat:           1,
		redisURL:         url,
		expireViewers:    1_000_000,
		footprintViewers: 100_000,
		log:              os.Stderr,
	}
}

// redisCallers is how many goroutines call a Redis-backed system at once in
// the reads and churn workloads.
const redisCallers = 64

// runner runs the workloads of one configuration and collects the report.
type runner struct {
	cfg config
	env *env
	rep *report
}

// runAll runs every selected workload, writes the report to w and returns
// it.
func runAll(cfg config, w io.Writer) (*report, error) {
	ctx := context.Background()
	if cfg.repeat < 1 {
		cfg.repeat = 1
	}
	e, err := newEnv(ctx, cfg.redisURL)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, env: e, rep: &report{header: header(ctx, cfg, e)}}
	err = r.run(ctx)
	if cerr := e.close(ctx); err == nil && cerr != nil {
		err = fmt.Errorf("deleting the run's keys: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	r.rep.write(w)
	return r.rep, nil
}

func (r *runner) run(ctx context.Context) error {
	procs := runtime.GOMAXPROCS(0)
	mem := []kind{memStore, memPresence, memCentrifuge}
	memRead := []kind{memStore, memCentrifuge}
	red := []kind{redisStore, redisPresence, redisCentrifuge, redisBaseline}
	redRead := []kind{redisStore, redisCentrifuge, redisBaseline}

	steps := []struct {
		name string
		fn   func() error
	}{
		{"heartbeat", func() error { return r.heartbeat(ctx, "memory", mem, procs, ">=1.0x, 0 allocs", 1.0) }},
		{"list", func() error { return r.read(ctx, "list", "memory", memRead, procs, ">=2x", 2) }},
		{"count", func() error { return r.read(ctx, "count", "memory", memRead, procs, ">=10x", 10) }},
		{"churn", func() error { return r.churn(ctx, "memory", memRead, procs) }},
		{"heartbeat", func() error { return r.heartbeat(ctx, "redis", red, 1, "", 0) }},
		{"heartbeat", func() error { return r.heartbeat(ctx, "redis", red, redisCallers, ">=1.5x", 1.5) }},
		{"list", func() error { return r.read(ctx, "list", "redis", redRead, redisCallers, ">=1.5x", 1.5) }},
		{"count", func() error { return r.read(ctx, "count", "redis", redRead, redisCallers, "", 0) }},
		{"churn", func() error { return r.churn(ctx, "redis", redRead, redisCallers) }},
		{"bytes", func() error { return r.footprint(ctx) }},
		{"expire", func() error { return r.expiry(ctx) }},
	}
	for _, s := range steps {
		if r.cfg.match != nil && !r.cfg.match(s.name) {
			continue
		}
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.log != nil {
		fmt.Fprintf(r.cfg.log, format+"\n", args...)
	}
}

// available drops the Redis kinds when the run has no Redis.
func (r *runner) available(kinds []kind) []kind {
	var out []kind
	for _, k := range kinds {
		if !k.redis || r.env.client != nil {
			out = append(out, k)
		}
	}
	return out
}

// cell is one system's instance for one measured run.
type cell struct {
	sys    system
	prefix string
}

func (r *runner) open(k kind) (cell, error) {
	prefix := r.env.nextPrefix()
	sys, err := k.open(r.env, prefix)
	return cell{sys, prefix}, err
}

func (r *runner) discard(ctx context.Context, c cell) error {
	err := c.sys.close()
	if derr := r.env.deleteKeys(ctx, c.prefix); err == nil {
		err = derr
	}
	return err
}

// populate makes every viewer of vs present in sys.
func populate(ctx context.Context, sys system, vs []viewer, callers int) error {
	return parallel(len(vs), callers, func(i int) error { return sys.heartbeat(ctx, &vs[i]) })
}

// throughput measures op on each kind, cfg.repeat times in alternation,
// after setup, and returns the median samples in the order of kinds.
func (r *runner) throughput(ctx context.Context, label string, kinds []kind, callers int,
	setup func(sys system) error, op func(sys system, w *worker) error) ([]sample, error) {
	ops := make([][]float64, len(kinds))
	allocs := make([][]float64, len(kinds))
	server := make([][]float64, len(kinds))
	for range r.cfg.repeat {
		for i, k := range kinds {
			c, err := r.open(k)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.name, err)
			}
			err = setup(c.sys)
			var s sample
			var cpu0, cpu1 time.Duration
			if err == nil && k.redis {
				cpu0, err = r.serverCPU(ctx)
			}
			if err == nil {
				s, err = measure(callers, r.cfg.duration, func(w *worker) error { return op(c.sys, w) })
			}
			if err == nil && k.redis {
				if cpu1, err = r.serverCPU(ctx); err == nil && s.opsPerSec > 0 {
					s.serverPerOp = (cpu1 - cpu0) / time.Duration(s.opsPerSec*r.cfg.duration.Seconds())
				}
			}
			if derr := r.discard(ctx, c); err == nil {
				err = derr
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.name, err)
			}
			r.logf("%-9s %-6s %3d callers  %-20s %12.0f ops/s %6.2f allocs/op %v Redis CPU/op", label, where(k), callers, k.name, s.opsPerSec, s.allocsPerOp, s.serverPerOp)
			ops[i] = append(ops[i], s.opsPerSec)
			allocs[i] = append(allocs[i], s.allocsPerOp)
			server[i] = append(server[i], float64(s.serverPerOp))
		}
	}
	out := make([]sample, len(kinds))
	for i := range kinds {
		out[i] = sample{opsPerSec: median(ops[i]), allocsPerOp: median(allocs[i]), serverPerOp: time.Duration(median(server[i]))}
	}
	return out, nil
}

func where(k kind) string {
	if k.redis {
		return "redis"
	}
	return "memory"
}

// addThroughput adds one workload's rows to the report: ratios of each of
// our systems against the peer and the baseline, and the target, which
// applies to the first of our systems, when goal is positive.
func (r *runner) addThroughput(workload, place string, callers int, kinds []kind, samples []sample, goalText string, goal float64, zeroAllocs bool) {
	var peer, base float64
	for i, k := range kinds {
		switch k.name {
		case "centrifuge":
			peer = samples[i].opsPerSec
		case "go-redis":
			base = samples[i].opsPerSec
		}
	}
	targeted := false
	for i, k := range kinds {
		row := throughputRow{workload: workload, place: place, callers: callers, system: k.name, sample: samples[i]}
		if k.ours {
			row.vsPeer = ratio(samples[i].opsPerSec, peer)
			row.vsBase = ratio(samples[i].opsPerSec, base)
			if goal > 0 && !targeted {
				targeted = true
				met := row.vsPeer >= goal
				if zeroAllocs {
					met = met && samples[i].allocsPerOp < 0.01
				}
				row.target = &target{text: goalText, met: met}
			}
		}
		r.rep.throughput = append(r.rep.throughput, row)
	}
}

func ratio(ours, theirs float64) float64 {
	if theirs == 0 {
		return 0
	}
	return ours / theirs
}

// heartbeat measures refreshes of random viewers among 10,000 in 100 rooms.
func (r *runner) heartbeat(ctx context.Context, place string, kinds []kind, callers int, goalText string, goal float64) error {
	kinds = r.available(kinds)
	if len(kinds) == 0 {
		return nil
	}
	vs := viewers("hb", 10_000, 100)
	samples, err := r.throughput(ctx, "heartbeat", kinds, callers,
		func(sys system) error { return populate(ctx, sys, vs, redisCallers) },
		func(sys system, w *worker) error { return sys.heartbeat(ctx, &vs[w.rand.IntN(len(vs))]) })
	if err != nil {
		return err
	}
	r.addThroughput("heartbeat", place, callers, kinds, samples, goalText, goal, place == "memory")
	return nil
}

// read measures List or Count of a 100-viewer room, checking every answer.
func (r *runner) read(ctx context.Context, op, place string, kinds []kind, callers int, goalText string, goal float64) error {
	kinds = r.available(kinds)
	if len(kinds) == 0 {
		return nil
	}
	vs := viewers(op, 100, 1)
	room := vs[0].room
	samples, err := r.throughput(ctx, op, kinds, callers,
		func(sys system) error { return populate(ctx, sys, vs, redisCallers) },
		func(sys system, _ *worker) error {
			var n int
			var err error
			if op == "list" {
				n, err = sys.list(ctx, room)
			} else {
				n, err = sys.count(ctx, room)
			}
			if err == nil && n != len(vs) {
				err = fmt.Errorf("%s found %d viewers, want %d", op, n, len(vs))
			}
			return err
		})
	if err != nil {
		return err
	}
	r.addThroughput(op, place, callers, kinds, samples, goalText, goal, false)
	return nil
}

// churn measures a new viewer joining and leaving one of 100 rooms that
// hold 10,000 viewers between them. Each caller cycles through 100 viewers
// of its own, each absent when it joins.
func (r *runner) churn(ctx context.Context, place string, kinds []kind, callers int) error {
	kinds = r.available(kinds)
	if len(kinds) == 0 {
		return nil
	}
	vs := viewers("churn", 10_000, 100)
	pools := make([][]viewer, callers)
	for i := range pools {
		pools[i] = viewers("churn-"+strconv.Itoa(i), 100, 100)
	}
	samples, err := r.throughput(ctx, "churn", kinds, callers,
		func(sys system) error { return populate(ctx, sys, vs, redisCallers) },
		func(sys system, w *worker) error {
			pool := pools[w.id]
			v := &pool[w.iter%len(pool)]
			if err := sys.heartbeat(ctx, v); err != nil {
				return err
			}
			return sys.leave(ctx, v)
		})
	if err != nil {
		return err
	}
	r.addThroughput("churn", place, callers, kinds, samples, "", 0, false)
	return nil
}

// serverCPU returns the CPU time the Redis server has used so far, in user
// and system mode, with the precision INFO gives (microseconds).
func (r *runner) serverCPU(ctx context.Context) (time.Duration, error) {
	info, err := r.env.client.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(infoField(info, f), 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu %s: %w", f, err)
		}
		total += v
	}
	return time.Duration(total * float64(time.Second)), nil
}

// header describes the machine and the run.
func header(ctx context.Context, cfg config, e *env) string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %d CPUs (GOMAXPROCS %d), %s; %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version())
	if e.client != nil {
		fmt.Fprintf(&b, "; Redis %s", redisVersion(ctx, e))
	} else {
		b.WriteString("; no Redis")
	}
	fmt.Fprintf(&b, "\nrun: %v per cell, median of %d\n", cfg.duration, cfg.repeat)
	return b.String()
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func redisVersion(ctx context.Context, e *env) string {
	info, err := e.client.Info(ctx, "server").Result()
	if err != nil {
		return "unknown"
	}
	return infoField(info, "redis_version")
}

// infoField returns one field of an INFO reply.
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
