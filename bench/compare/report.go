package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"
	"time"
)

// report is everything a run measured.
type report struct {
	header     string
	throughput []throughputRow
	bytes      []bytesRow
	expire     []expireRow
}

// A target is a goal one of our figures is held to.
type target struct {
	text string // the goal, such as ">=1.5x"
	met  bool
}

func (t *target) String() string {
	if t == nil {
		return ""
	}
	if t.met {
		return t.text + " met"
	}
	return t.text + " NOT MET"
}

type throughputRow struct {
	workload, place string
	callers         int
	system          string
	sample
	vsPeer, vsBase float64 // ours / theirs; 0 when not compared
	target         *target
}

type bytesRow struct {
	layout, place, system string
	heap, server          float64 // bytes per presence: Go heap, Redis used_memory
	vsPeer, vsBase        float64
	target                *target
}

// value is the figure the row is compared by: Redis memory for a Redis
// system, Go heap otherwise.
func (r bytesRow) value() float64 {
	if r.place == "redis" {
		return r.server
	}
	return r.heap
}

type expireRow struct {
	system         string
	viewers, rooms int
	cost           [2]time.Duration // expiring 1% and 100%
	target         *target
}

func (r expireRow) ratio() float64 {
	if r.cost[1] == 0 {
		return math.Inf(1)
	}
	return float64(r.cost[0]) / float64(r.cost[1])
}

// targets returns every target of the report.
func (rep *report) targets() []*target {
	var ts []*target
	for _, r := range rep.throughput {
		if r.target != nil {
			ts = append(ts, r.target)
		}
	}
	for _, r := range rep.bytes {
		if r.target != nil {
			ts = append(ts, r.target)
		}
	}
	for _, r := range rep.expire {
		if r.target != nil {
			ts = append(ts, r.target)
		}
	}
	return ts
}

func (rep *report) write(w io.Writer) {
	fmt.Fprintln(w, rep.header)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(rep.throughput) > 0 {
		fmt.Fprintln(tw, "THROUGHPUT (higher is better; ratios are ours / theirs)")
		fmt.Fprintln(tw, "workload\tstore\tcallers\tsystem\tops/s\tallocs/op\tRedis CPU/op\tvs centrifuge\tvs go-redis\ttarget")
		for _, r := range rep.throughput {
			cpu := "-"
			if r.place == "redis" {
				cpu = fmt.Sprintf("%.1fµs", float64(r.serverPerOp)/float64(time.Microsecond))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\n", r.workload, r.place, r.callers, r.system,
				group(int(math.Round(r.opsPerSec))), r.allocsPerOp, cpu, times(r.vsPeer), times(r.vsBase), r.target)
		}
		fmt.Fprintln(tw, "\t")
	}
	if len(rep.bytes) > 0 {
		fmt.Fprintln(tw, "BYTES PER PRESENCE (lower is better; Go heap for memory stores, Redis used_memory for Redis)")
		fmt.Fprintln(tw, "layout\tstore\tsystem\tbytes\tGo heap\tvs centrifuge\tvs go-redis\ttarget")
		for _, r := range rep.bytes {
			heap := "-"
			if r.place == "redis" {
				heap = fmt.Sprintf("%.0f", r.heap)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\n", r.layout, r.place, r.system, r.value(), heap,
				times(r.vsPeer), times(r.vsBase), r.target)
		}
		fmt.Fprintln(tw, "\t")
	}
	if len(rep.expire) > 0 {
		fmt.Fprintln(tw, "EXPIRY (one Expire call; due viewers spread over every room)")
		fmt.Fprintln(tw, "system\tviewers\trooms\texpire 1%\texpire 100%\t1% / 100%\ttarget")
		for _, r := range rep.expire {
			fmt.Fprintf(tw, "%s\t%s\t%s of %s\t%v\t%v\t%.1f%%\t%s\n", r.system, group(r.viewers), group(r.rooms),
				group(r.viewers/r.rooms), round(r.cost[0]), round(r.cost[1]), 100*r.ratio(), r.target)
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
	met, all := 0, rep.targets()
	for _, t := range all {
		if t.met {
			met++
		}
	}
	fmt.Fprintf(w, "targets: %d of %d met\n", met, len(all))
}

// times formats a ratio, or "-" when there is none.
func times(r float64) string {
	if r == 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "x"
}

// round keeps three significant digits of d.
func round(d time.Duration) time.Duration {
	for m := time.Duration(1); ; m *= 10 {
		if d < 1000*m {
			return d.Round(m)
		}
	}
}

// group formats n with thousands separators.
func group(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + group(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
