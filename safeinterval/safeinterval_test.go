package safeinterval

import (
	"testing"

	"github.com/ignetcd/ignetcd/ordering"
)

// The buffer the feed uses must be a View.
var _ View = (*ordering.Buffer[int64])(nil)

func TestContiguousSafePoint(t *testing.T) {
	tests := []struct {
		name     string
		released int64
		adds     []int64
		release  int64
		want     int64
	}{
		{name: "empty", want: 0},
		{name: "empty nonzero released", released: 9, want: 9},
		{name: "prefix", adds: []int64{1, 2, 3}, want: 3},
		{name: "first missing", adds: []int64{2, 3}, want: 0},
		{name: "hole", adds: []int64{1, 2, 4}, want: 2},
		{name: "out of order complete", adds: []int64{4, 2, 3, 1}, want: 4},
		{name: "after partial release", adds: []int64{1, 2, 3, 5}, release: 2, want: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := ordering.New[int64](tc.released)
			for _, r := range tc.adds {
				b.Add(r, r)
			}
			if tc.release > 0 {
				b.Release(tc.release)
			}
			var rule Rule = Contiguous{}
			if got := rule.SafePoint(b); got != tc.want {
				t.Errorf("SafePoint = %d, want %d", got, tc.want)
			}
		})
	}
}
