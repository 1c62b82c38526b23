package memstore_test

import (
	"testing"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Suite{
		New:        func(t *testing.T, ns string) presence.Store { return memstore.New() },
		ModelSteps: 5000,
	})
}

func TestSoak(t *testing.T) {
	var last *memstore.Store
	rep := storetest.Soak(t, storetest.Suite{
		New: func(t *testing.T, ns string) presence.Store { last = memstore.New(); return last },
	}, storetest.SoakConfig{
		Leftover: func(t *testing.T, ns string) int { return last.Len() },
	})
	if rep.Departures == 0 || rep.Joins == 0 || rep.Crashes == 0 {
		t.Fatalf("soak exercised too little: %+v", rep)
	}
}
