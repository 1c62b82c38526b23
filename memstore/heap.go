package memstore

// expiryHeap is a min-heap of sessions by key. Each session records its
// index, so a refresh moves it in place in O(log n) without allocating.
type expiryHeap []*session

func (h *expiryHeap) push(s *session) {
	s.index = len(*h)
	*h = append(*h, s)
	h.up(s.index)
}

func (h *expiryHeap) pop() *session {
	s := (*h)[0]
	h.remove(0)
	return s
}

func (h *expiryHeap) remove(i int) {
	old := *h
	last := len(old) - 1
	removed := old[i]
	if i != last {
		old[i] = old[last]
		old[i].index = i
	}
	old[last] = nil
	*h = old[:last]
	if i != last {
		h.fix(i)
	}
	removed.index = -1
}

func (h expiryHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].key <= h[i].key {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down sifts h[i] towards the leaves and reports whether it moved.
func (h expiryHeap) down(i int) bool {
	start := i
	for {
		least := 2*i + 1
		if least >= len(h) {
			break
		}
		if r := least + 1; r < len(h) && h[r].key < h[least].key {
			least = r
		}
		if h[i].key <= h[least].key {
			break
		}
		h.swap(i, least)
		i = least
	}
	return i > start
}

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
