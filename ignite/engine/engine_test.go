package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ignetcd/ignetcd/ignite/client"
	"github.com/ignetcd/ignetcd/ignite/ignitetest"
	"github.com/ignetcd/ignetcd/mvcc"
	"github.com/ignetcd/ignetcd/mvcc/enginetest"
)

var runID atomic.Int64

// TestEngineContract runs the engine contract on ignitetest, or on the real
// cluster named by IGNETCD_TEST_IGNITE (each run under its own cache prefix).
func TestEngineContract(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) (mvcc.Engine, string) {
		eps, _ := ignitetest.Endpoints(t, ignitetest.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e, err := Open(ctx, Config{Client: client.Config{Endpoints: eps}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e, fmt.Sprintf("enginetest-%d-%d-", time.Now().UnixNano(), runID.Add(1))
	})
}
