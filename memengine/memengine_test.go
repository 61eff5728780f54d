package memengine

import (
	"testing"

	"github.com/ignetcd/ignetcd/mvcc"
	"github.com/ignetcd/ignetcd/mvcc/enginetest"
)

func TestEngineContract(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) (mvcc.Engine, string) {
		e := New()
		t.Cleanup(func() { e.Close() })
		return e, "test-"
	})
}
