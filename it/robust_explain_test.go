package it

import (
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestUnexplainedRevisionsMatchEachToItsOwnOp: the check that every
// revision no acknowledged write names was made by some unknown-outcome op
// must find an op for each one if any assignment does. Taking the first op
// that fits, the range delete would take the one-key revision and leave the
// two-key revision unexplained (a false "written by no operation").
func TestUnexplainedRevisionsMatchEachToItsOwnOp(t *testing.T) {
	del := func(keys ...int) []watchEvent {
		var evs []watchEvent
		for _, k := range keys {
			evs = append(evs, watchEvent{typ: mvccpb.DELETE, key: robustKeys[k]})
		}
		return evs
	}
	p0, p1, p2 := 3, 4, 5 // /r/p/0, /r/p/1, /r/p/2
	if robustKeys[p0] != "/r/p/0" || robustKeys[p2] != "/r/p/2" {
		t.Fatalf("robustKeys changed: %q", robustKeys)
	}
	rangeDel := robustOp{in: mInput{kind: rDeleteRange}}
	oneDel := robustOp{in: mInput{kind: rDelete, key: p2}}

	revs := [][]watchEvent{del(p2), del(p0, p1)}
	if left := unexplained([]robustOp{rangeDel, oneDel}, revs); len(left) != 0 {
		t.Fatalf("revisions %v left unexplained; want each explained by its own op", left)
	}
	// One range delete cannot explain two revisions.
	if left := unexplained([]robustOp{rangeDel}, [][]watchEvent{del(p0), del(p1, p2)}); !slices.Equal(left, []int{1}) {
		t.Fatalf("unexplained = %v; want [1]", left)
	}
	// Nor does a one-key delete explain another key's revision.
	if left := unexplained([]robustOp{oneDel}, [][]watchEvent{del(p0)}); !slices.Equal(left, []int{0}) {
		t.Fatalf("unexplained = %v; want [0]", left)
	}
}
