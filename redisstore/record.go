package redisstore

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// This file decodes, in Go, the user records the scripts write into the
// info hash with cmsgpack (see scripts.go), so that reads need no script.

// record is one user's entry in the info hash.
type record struct {
	user        string // the hash field's own string, which viewers share
	first, last int64
	meta        []byte   // nil if none; shared by the viewers built from it
	sufs        []string // "<ttl>:<session>" of each session
}

var errRecord = errors.New("malformed user record")

// decodeRecord parses cmsgpack.pack(first, meta, last - first,
// suffix...). sufs reuses buf's storage. The strings it returns share v's
// memory.
func decodeRecord(v string, buf []string) (record, error) {
	var r record
	var d mpDecoder
	d.s = v
	var ok1, ok2, ok3 bool
	r.first, ok1 = d.int()
	var meta string
	meta, ok2 = d.str()
	if meta != "" {
		r.meta = []byte(meta)
	}
	var since int64
	since, ok3 = d.int()
	r.last = r.first + since
	if !(ok1 && ok2 && ok3) {
		return r, errRecord
	}
	r.sufs = buf[:0]
	for len(d.s) > 0 {
		suf, ok := d.str()
		if !ok {
			return r, errRecord
		}
		r.sufs = append(r.sufs, suf)
	}
	return r, nil
}

// ttlOf returns the TTL in a session suffix "<ttl>:<session>".
func ttlOf(suf string) (int64, bool) {
	t, _, ok := strings.Cut(suf, ":")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(t, 10, 64)
	return n, err == nil
}

// mpDecoder reads the msgpack subset Redis's cmsgpack writes for integers,
// doubles and strings.
type mpDecoder struct{ s string }

func (d *mpDecoder) take(n int) (string, bool) {
	if n < 0 || len(d.s) < n {
		return "", false
	}
	b := d.s[:n]
	d.s = d.s[n:]
	return b, true
}

func (d *mpDecoder) int() (int64, bool) {
	if len(d.s) == 0 {
		return 0, false
	}
	c := d.s[0]
	d.s = d.s[1:]
	switch {
	case c <= 0x7f:
		return int64(c), true
	case c >= 0xe0:
		return int64(int8(c)), true
	}
	var n int
	switch c {
	case 0xcc, 0xd0:
		n = 1
	case 0xcd, 0xd1:
		n = 2
	case 0xce, 0xd2, 0xca:
		n = 4
	case 0xcf, 0xd3, 0xcb:
		n = 8
	default:
		return 0, false
	}
	b, ok := d.take(n)
	if !ok {
		return 0, false
	}
	var u uint64
	for i := 0; i < n; i++ {
		u = u<<8 | uint64(b[i])
	}
	switch c {
	case 0xcc, 0xcd, 0xce:
		return int64(u), true
	case 0xcf:
		return int64(u), u <= math.MaxInt64
	case 0xd0:
		return int64(int8(u)), true
	case 0xd1:
		return int64(int16(u)), true
	case 0xd2:
		return int64(int32(u)), true
	case 0xd3:
		return int64(u), true
	case 0xca:
		return int64(math.Float32frombits(uint32(u))), true
	default: // 0xcb
		return int64(math.Float64frombits(u)), true
	}
}

func (d *mpDecoder) str() (string, bool) {
	if len(d.s) == 0 {
		return "", false
	}
	c := d.s[0]
	d.s = d.s[1:]
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		b, ok := d.take(1)
		if !ok {
			return "", false
		}
		n = int(b[0])
	case c == 0xda || c == 0xc5:
		b, ok := d.take(2)
		if !ok {
			return "", false
		}
		n = int(b[0])<<8 | int(b[1])
	case c == 0xdb || c == 0xc6:
		b, ok := d.take(4)
		if !ok {
			return "", false
		}
		n = int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	default:
		return "", false
	}
	return d.take(n)
}
