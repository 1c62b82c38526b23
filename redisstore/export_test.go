package redisstore

// DecodeDump exposes decodeDump to the external tests, as a map from
// member to score.
func DecodeDump(p string) (map[string]int64, bool) {
	zs, ok := decodeDump(p)
	if !ok {
		return nil, false
	}
	m := make(map[string]int64, len(zs))
	for _, z := range zs {
		m[z.member] = z.score
	}
	return m, true
}

// ReadsByDump reports whether List still reads zsets with DUMP.
func (s *Store) ReadsByDump() bool { return !s.noDump.Load() }
