package it

// The etcd key model the robustness histories are checked against with
// porcupine: a global revision plus, for each key of a small fixed key set,
// the latest {value, create revision, mod revision, version}. Every
// operation the traffic issues is a single request (one Range, Put,
// DeleteRange or Txn); its output is what the client saw. An operation whose
// outcome is unknown (error, timeout, lost connection) returns at "infinity"
// and accepts any output: porcupine may linearize it anywhere after its
// call, which models "possibly applied".

import (
	"fmt"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// The key set. Keys under robustPrefixRange are also read and deleted as a
// range, so that one revision can carry several events.
var robustKeys = []string{"/r/a", "/r/b", "/r/c", "/r/p/0", "/r/p/1", "/r/p/2", "compact_rev_key"}

const (
	robustPrefixRange = "/r/p/"
	compactKeyIdx     = 6
	nRobustKeys       = 7
)

// prefixKeys are the indexes of the keys under robustPrefixRange.
var prefixKeys = []int{3, 4, 5}

func keyIndex(k string) int {
	for i, rk := range robustKeys {
		if rk == k {
			return i
		}
	}
	return -1
}

// mKV is one key's latest record; ver == 0 means absent.
type mKV struct {
	val              string
	create, mod, ver int64
}

func (kv mKV) String() string {
	if kv.ver == 0 {
		return "∅"
	}
	return fmt.Sprintf("%q c%d m%d v%d", kv.val, kv.create, kv.mod, kv.ver)
}

// mState is comparable: porcupine's Equal is ==.
type mState struct {
	rev int64
	kv  [nRobustKeys]mKV
}

type robustKind uint8

const (
	rGet         robustKind = iota // Range(key), linearizable
	rRange                         // Range(prefix), linearizable
	rPut                           // Put(key, val)
	rDelete                        // DeleteRange(key)
	rDeleteRange                   // DeleteRange(prefix)
	rCreate                        // Txn If MOD(key)==0 Then Put
	rUpdate                        // Txn If MOD(key)==expect Then Put Else Range(key)
	rOptDelete                     // Txn If MOD(key)==expect Then DeleteRange(key) Else Range(key)
	rCompactCAS                    // Txn If VERSION(compact_rev_key)==expect Then Put Else Range
)

var robustKindNames = [...]string{"get", "range", "put", "delete", "deleterange", "create", "update", "optdelete", "compactcas"}

func (k robustKind) String() string { return robustKindNames[k] }

// writes reports whether the op may change the keyspace.
func (k robustKind) writes() bool { return k != rGet && k != rRange }

// putsValue reports whether the op, when it changes something, puts its
// (unique) value, so that the watch stream tells whether it was applied.
func (k robustKind) putsValue() bool {
	return k == rPut || k == rCreate || k == rUpdate
}

type mInput struct {
	kind   robustKind
	key    int // index into robustKeys (unused for range ops)
	val    string
	expect int64 // mod revision (update, optdelete) or version (compactcas)
}

func (in mInput) String() string {
	switch in.kind {
	case rRange, rDeleteRange:
		return fmt.Sprintf("%s(%s)", in.kind, robustPrefixRange)
	case rGet, rDelete:
		return fmt.Sprintf("%s(%s)", in.kind, robustKeys[in.key])
	case rCreate, rPut:
		return fmt.Sprintf("%s(%s=%q)", in.kind, robustKeys[in.key], in.val)
	}
	return fmt.Sprintf("%s(%s=%q if %d)", in.kind, robustKeys[in.key], in.val, in.expect)
}

// mOutput is what the client saw.
type mOutput struct {
	unknown bool // the request failed: any outcome
	// knownRev, for an unknown write, is the revision at which the watch
	// stream shows it applied (0: not known).
	knownRev  int64
	err       string // the error, for reports
	rev       int64  // header revision
	succeeded bool   // txn
	deleted   int64
	got       [nRobustKeys]mKV // read results (Get, Range, failed-compare Range)
}

func (out mOutput) describe(in mInput) string {
	if out.unknown {
		if out.knownRev != 0 {
			return fmt.Sprintf("unknown (%s), applied at %d per watch", out.err, out.knownRev)
		}
		return fmt.Sprintf("unknown (%s)", out.err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d", out.rev)
	switch in.kind {
	case rCreate, rUpdate, rOptDelete, rCompactCAS:
		fmt.Fprintf(&b, " ok=%v", out.succeeded)
	}
	if in.kind == rDelete || in.kind == rDeleteRange || (in.kind == rOptDelete && out.succeeded) {
		fmt.Fprintf(&b, " deleted=%d", out.deleted)
	}
	for _, i := range readKeys(in, out.succeeded) {
		fmt.Fprintf(&b, " %s=%s", robustKeys[i], out.got[i])
	}
	return b.String()
}

// readKeys are the keys whose values the op's response carries.
func readKeys(in mInput, succeeded bool) []int {
	switch in.kind {
	case rGet:
		return []int{in.key}
	case rRange:
		return prefixKeys
	case rUpdate, rOptDelete, rCompactCAS:
		if !succeeded {
			return []int{in.key}
		}
	}
	return nil
}

func (s mState) put(k int, val string) mState {
	s.rev++
	old := s.kv[k]
	nk := mKV{val: val, mod: s.rev, create: s.rev, ver: 1}
	if old.ver != 0 {
		nk.create, nk.ver = old.create, old.ver+1
	}
	s.kv[k] = nk
	return s
}

// apply runs in on s and returns the next state and the output a correct
// server gives.
func apply(s mState, in mInput) (mState, mOutput) {
	var out mOutput
	switch in.kind {
	case rGet, rRange:
		for _, k := range readKeys(in, false) {
			out.got[k] = s.kv[k]
		}
	case rPut:
		s = s.put(in.key, in.val)
	case rDelete:
		if s.kv[in.key].ver != 0 {
			s.rev++
			s.kv[in.key] = mKV{}
			out.deleted = 1
		}
	case rDeleteRange:
		for _, k := range prefixKeys {
			if s.kv[k].ver != 0 {
				s.kv[k] = mKV{}
				out.deleted++
			}
		}
		if out.deleted > 0 {
			s.rev++
		}
	case rCreate:
		if s.kv[in.key].ver == 0 {
			out.succeeded = true
			s = s.put(in.key, in.val)
		}
	case rUpdate, rCompactCAS:
		cur := s.kv[in.key].mod
		if in.kind == rCompactCAS {
			cur = s.kv[in.key].ver
		}
		if cur == in.expect {
			out.succeeded = true
			s = s.put(in.key, in.val)
		} else {
			out.got[in.key] = s.kv[in.key]
		}
	case rOptDelete:
		if s.kv[in.key].mod == in.expect {
			out.succeeded = true
			if s.kv[in.key].ver != 0 {
				s.rev++
				s.kv[in.key] = mKV{}
				out.deleted = 1
			}
		} else {
			out.got[in.key] = s.kv[in.key]
		}
	}
	out.rev = s.rev
	return s, out
}

func modelStep(state, input, output any) (bool, any) {
	s, in, got := state.(mState), input.(mInput), output.(mOutput)
	next, want := apply(s, in)
	if got.unknown {
		if got.knownRev != 0 {
			// The watch shows it applied at knownRev: it must change the
			// keyspace, and exactly then.
			return next.rev == got.knownRev && next.rev == s.rev+1, next
		}
		return true, next
	}
	if got.rev != want.rev || got.succeeded != want.succeeded || got.deleted != want.deleted {
		return false, s
	}
	for _, k := range readKeys(in, want.succeeded) {
		if got.got[k] != want.got[k] {
			return false, s
		}
	}
	return true, next
}

var robustModel = porcupine.Model{
	Init:  func() any { return mState{rev: 1} },
	Step:  modelStep,
	Equal: func(a, b any) bool { return a.(mState) == b.(mState) },
	Hash: func(state any) uint64 {
		s := state.(mState)
		h := uint64(s.rev)
		for _, kv := range s.kv {
			h = h*1099511628211 ^ uint64(kv.mod)
		}
		return h
	},
	DescribeOperation: func(input, output any) string {
		in := input.(mInput)
		return in.String() + " → " + output.(mOutput).describe(in)
	},
	DescribeState: func(state any) string {
		s := state.(mState)
		var b strings.Builder
		fmt.Fprintf(&b, "rev %d", s.rev)
		for i, kv := range s.kv {
			if kv.ver != 0 {
				fmt.Fprintf(&b, ", %s=%s", robustKeys[i], kv)
			}
		}
		return b.String()
	},
}

// TestRobustModel: the model and checks accept correct histories and
// catch the bugs they exist for.
func TestRobustModel(t *testing.T) {
	a := 0
	put := func(call, ret int64, val string, rev int64) porcupine.Operation {
		return porcupine.Operation{Input: mInput{kind: rPut, key: a, val: val}, Call: call, Return: ret, Output: mOutput{rev: rev}}
	}
	get := func(call, ret int64, kv mKV, rev int64) porcupine.Operation {
		var out mOutput
		out.rev, out.got[a] = rev, kv
		return porcupine.Operation{ClientId: 1, Input: mInput{kind: rGet, key: a}, Call: call, Return: ret, Output: out}
	}
	unknownPut := func(call int64, val string, knownRev int64) porcupine.Operation {
		return porcupine.Operation{Input: mInput{kind: rPut, key: a, val: val}, Call: call, Return: robustInfinity,
			Output: mOutput{unknown: true, knownRev: knownRev}}
	}
	update := func(call, ret int64, val string, expect int64, ok bool, rev int64, cur mKV) porcupine.Operation {
		out := mOutput{rev: rev, succeeded: ok}
		if !ok {
			out.got[a] = cur
		}
		return porcupine.Operation{Input: mInput{kind: rUpdate, key: a, val: val, expect: expect}, Call: call, Return: ret, Output: out}
	}
	x2 := mKV{val: "x", create: 2, mod: 2, ver: 1}
	y3 := mKV{val: "y", create: 2, mod: 3, ver: 2}
	for _, tc := range []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"read after write", true, []porcupine.Operation{put(0, 10, "x", 2), get(20, 30, x2, 2)}},
		{"stale read", false, []porcupine.Operation{put(0, 10, "x", 2), get(20, 30, mKV{}, 1)}},
		{"concurrent read may miss the write", true, []porcupine.Operation{put(0, 10, "x", 2), get(5, 30, mKV{}, 1)}},
		{"header revision too high", false, []porcupine.Operation{put(0, 10, "x", 2), get(20, 30, x2, 3)}},
		{"wrong version", false, []porcupine.Operation{put(0, 10, "x", 2), get(20, 30, mKV{val: "x", create: 2, mod: 2, ver: 2}, 2)}},
		{"unknown write observed", true, []porcupine.Operation{unknownPut(0, "x", 0), get(20, 30, x2, 2)}},
		{"unknown write not applied", true, []porcupine.Operation{unknownPut(0, "x", 0), get(20, 30, mKV{}, 1)}},
		{"unknown write applied at a known revision", false, []porcupine.Operation{unknownPut(0, "x", 3), get(20, 30, x2, 2)}},
		{"lost acknowledged write", false, []porcupine.Operation{put(0, 10, "x", 2), put(20, 30, "y", 3), get(40, 50, x2, 3)}},
		{"cas", true, []porcupine.Operation{put(0, 10, "x", 2), update(20, 30, "y", 2, true, 3, mKV{}), update(40, 50, "z", 2, false, 3, y3)}},
		{"cas on a stale revision succeeded", false, []porcupine.Operation{put(0, 10, "x", 2), put(20, 30, "y", 3), update(40, 50, "z", 2, true, 4, mKV{})}},
		{"two writes, one revision", false, []porcupine.Operation{put(0, 10, "x", 2), put(0, 10, "y", 2)}},
	} {
		if got := porcupine.CheckOperations(robustModel, tc.ops); got != tc.ok {
			t.Errorf("%s: linearizable = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
