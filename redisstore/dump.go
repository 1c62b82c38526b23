package redisstore

import (
	"math"
	"strconv"
)

// This file decodes the reply of DUMP on a sorted set, which is how List
// reads a room's zsets: DUMP copies the set's memory as it is, where
// ZRANGE WITHSCORES formats every score as a double (on Redis 7.0 that
// takes most of a read's server time: about 0.3µs a score, against about
// 3µs for the DUMP of a whole 100-member set).
//
// A DUMP payload is one value in Redis's RDB format, followed by two bytes
// of RDB version and eight of checksum. Two value types are decoded: a
// compact set (RDB_TYPE_ZSET_LISTPACK, Redis 7.0 and later), which is one
// string holding a listpack of member, score, member, score..., and a
// large one (RDB_TYPE_ZSET_2), which is a count of members, each a string
// and a little-endian float64. Anything else, or anything malformed, is
// reported as not decoded, and List reads the set with ZRANGE instead; so
// a server with another format or without DUMP costs speed, never
// correctness.

const (
	rdbTypeZSet2        = 5
	rdbTypeZSetListpack = 17
	dumpTrailer         = 10 // RDB version and checksum
)

// decodeDump returns the members and scores of a sorted set from its DUMP
// payload, and false if it cannot decode it. Members share memory with
// the payload or with its decompressed listpack.
func decodeDump(p string) ([]scored, bool) {
	if len(p) < 1+dumpTrailer {
		return nil, false
	}
	r := rdbReader{s: p[1 : len(p)-dumpTrailer]}
	var zs []scored
	var ok bool
	switch p[0] {
	case rdbTypeZSetListpack:
		var lp string
		if lp, ok = r.str(); ok {
			zs, ok = decodeListpack(lp)
		}
	case rdbTypeZSet2:
		zs, ok = r.zset()
	}
	if !ok || len(r.s) != 0 {
		return nil, false
	}
	return zs, true
}

// rdbReader reads RDB-encoded values from s.
type rdbReader struct{ s string }

// length reads a length; special is true for the encodings of strings
// stored as integers or compressed, whose kind it returns as n.
func (r *rdbReader) length() (n uint64, special, ok bool) {
	if len(r.s) == 0 {
		return 0, false, false
	}
	b := r.s[0]
	switch b >> 6 {
	case 0:
		r.s = r.s[1:]
		return uint64(b & 0x3f), false, true
	case 1:
		if len(r.s) < 2 {
			return 0, false, false
		}
		n = uint64(b&0x3f)<<8 | uint64(r.s[1])
		r.s = r.s[2:]
		return n, false, true
	case 3:
		r.s = r.s[1:]
		return uint64(b & 0x3f), true, true
	}
	switch {
	case b == 0x80 && len(r.s) >= 5:
		n = bigEndian(r.s[1:5])
		r.s = r.s[5:]
	case b == 0x81 && len(r.s) >= 9:
		n = bigEndian(r.s[1:9])
		r.s = r.s[9:]
	default:
		return 0, false, false
	}
	return n, false, true
}

// str reads a string: raw, an integer, or LZF-compressed.
func (r *rdbReader) str() (string, bool) {
	n, special, ok := r.length()
	if !ok {
		return "", false
	}
	if !special {
		return r.take(n)
	}
	switch n {
	case 0, 1, 2: // a signed integer of 1, 2 or 4 bytes
		b, ok := r.take(1 << n)
		if !ok {
			return "", false
		}
		return strconv.FormatInt(signed(littleEndian(b), 8*len(b)), 10), true
	case 3:
		clen, sp1, ok1 := r.length()
		ulen, sp2, ok2 := r.length()
		// LZF expands at most 88 times: a three-byte reference gives
		// up to 264 bytes.
		if !ok1 || !ok2 || sp1 || sp2 || ulen > 88*clen+32 {
			return "", false
		}
		c, ok := r.take(clen)
		if !ok {
			return "", false
		}
		return lzfDecompress(c, int(ulen))
	}
	return "", false
}

func (r *rdbReader) take(n uint64) (string, bool) {
	if n > uint64(len(r.s)) {
		return "", false
	}
	b := r.s[:n]
	r.s = r.s[n:]
	return b, true
}

// zset reads the members of an RDB_TYPE_ZSET_2 value.
func (r *rdbReader) zset() ([]scored, bool) {
	n, special, ok := r.length()
	if !ok || special || n > uint64(len(r.s)/9) { // each member takes 9 bytes or more
		return nil, false
	}
	zs := make([]scored, n)
	for i := range zs {
		m, ok := r.str()
		if !ok {
			return nil, false
		}
		b, ok := r.take(8)
		if !ok {
			return nil, false
		}
		f := math.Float64frombits(littleEndian(b))
		zs[i] = scored{m, int64(f)}
	}
	return zs, true
}

// lzfDecompress expands LZF data into exactly n bytes.
func lzfDecompress(in string, n int) (string, bool) {
	out := make([]byte, 0, n)
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 1<<5 { // a run of ctrl+1 literal bytes
			run := ctrl + 1
			if i+run > len(in) || len(out)+run > n {
				return "", false
			}
			out = append(out, in[i:i+run]...)
			i += run
			continue
		}
		// A back reference: length from the top three bits (7 means
		// more in the next byte), offset from the rest and the next byte.
		length := ctrl >> 5
		if length == 7 {
			if i >= len(in) {
				return "", false
			}
			length += int(in[i])
			i++
		}
		if i >= len(in) {
			return "", false
		}
		ref := len(out) - (ctrl&0x1f)<<8 - int(in[i]) - 1
		i++
		length += 2
		if ref < 0 || len(out)+length > n {
			return "", false
		}
		for k := range length { // byte by byte: the source may overlap
			out = append(out, out[ref+k])
		}
	}
	if len(out) != n {
		return "", false
	}
	return string(out), true
}

// decodeListpack reads a listpack of member, score, member, score...
func decodeListpack(lp string) ([]scored, bool) {
	if len(lp) < 7 || littleEndian(lp[:4]) != uint64(len(lp)) || lp[len(lp)-1] != 0xff {
		return nil, false
	}
	count := int(littleEndian(lp[4:6]))
	body := lp[6 : len(lp)-1]
	if count == math.MaxUint16 || count%2 != 0 || count > len(body) {
		return nil, false // 65535 means "count unknown", which no small set has
	}
	zs := make([]scored, count/2)
	for i := range zs {
		m, n, isNum, rest, ok := lpEntry(body)
		if !ok {
			return nil, false
		}
		if isNum {
			m = strconv.FormatInt(n, 10)
		}
		s, sc, isNum, rest, ok := lpEntry(rest)
		if !ok {
			return nil, false
		}
		if !isNum {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) {
				return nil, false
			}
			sc = int64(f)
		}
		zs[i], body = scored{m, sc}, rest
	}
	return zs, len(body) == 0
}

// lpEntry reads one listpack entry, a string or an integer, and returns
// the rest of the listpack.
func lpEntry(b string) (str string, num int64, isNum bool, rest string, ok bool) {
	if len(b) == 0 {
		return "", 0, false, "", false
	}
	c := b[0]
	hdr, n := 1, 0 // the header's and the data's bytes
	isNum = true
	switch {
	case c&0x80 == 0: // 7-bit unsigned integer
		hdr, num = 1, int64(c)
	case c&0xc0 == 0x80: // string of up to 63 bytes
		n, isNum = int(c&0x3f), false
	case c&0xe0 == 0xc0: // 13-bit signed integer
		hdr = 2
		if len(b) >= 2 {
			num = signed(uint64(c&0x1f)<<8|uint64(b[1]), 13)
		}
	case c&0xf0 == 0xe0: // string of up to 4095 bytes
		hdr, isNum = 2, false
		if len(b) >= 2 {
			n = int(c&0x0f)<<8 | int(b[1])
		}
	case c == 0xf0: // string with a 32-bit length
		hdr, isNum = 5, false
		if len(b) >= 5 {
			n = int(littleEndian(b[1:5]))
		}
	case c >= 0xf1 && c <= 0xf4: // 16, 24, 32 or 64-bit signed integer
		size := [...]int{2, 3, 4, 8}[c-0xf1]
		hdr = 1 + size
		if len(b) >= hdr {
			num = signed(littleEndian(b[1:hdr]), 8*size)
		}
	default:
		return "", 0, false, "", false
	}
	size := hdr + n
	// The entry ends with its size, in 1 to 5 bytes of 7 bits, with
	// Redis's bounds (lpEncodeBacklen).
	back := 5
	switch {
	case size <= 127:
		back = 1
	case size < 16383:
		back = 2
	case size < 2097151:
		back = 3
	case size < 268435455:
		back = 4
	}
	if n < 0 || len(b) < size+back {
		return "", 0, false, "", false
	}
	if !isNum {
		str = b[hdr:size]
	}
	return str, num, isNum, b[size+back:], true
}

// littleEndian returns the unsigned integer in b's bytes, least
// significant first (at most 8).
func littleEndian(b string) uint64 {
	var u uint64
	for i := len(b) - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	return u
}

// bigEndian returns the unsigned integer in b's bytes, most significant
// first (at most 8).
func bigEndian(b string) uint64 {
	var u uint64
	for i := 0; i < len(b); i++ {
		u = u<<8 | uint64(b[i])
	}
	return u
}

// signed reads the low bits of u as a two's complement integer of that
// many bits.
func signed(u uint64, bits int) int64 {
	shift := uint(64 - bits)
	return int64(u<<shift) >> shift
}
