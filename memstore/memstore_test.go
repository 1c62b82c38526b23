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
		New: func(t *testing.T, ns string) presence.Store { return memstore.New() },
	})
}
