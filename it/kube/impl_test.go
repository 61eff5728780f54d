package kube

// Upstream etcd3's "implementation-specific" tests that need no unexported
// field of the store: compact_test.go, linearized_read_test.go, and parts
// of store_test.go and watcher_test.go, on ignetcd.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	etcdrpc "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const (
	waitDelay   = time.Millisecond
	waitTimeout = 100 * waitDelay
)

// TestCompact is compact_test.go's: the compactor's CAS on compact_rev_key
// and Compact, driven by a fake clock.
func TestCompact(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		client := runIgnetcd(t, env, nil).Client
		ctx := context.Background()
		clock := testingclock.NewFakeClock(time.Now())
		c := etcd3.NewCompactor(client, time.Minute, clock, nil)
		t.Cleanup(c.Stop)
		waitForClockWaiters(t, clock)

		t.Log("First compaction cycle saves revision before first write")
		clock.Step(time.Minute)
		waitForClockWaiters(t, clock)
		compactRev := c.CompactRevision()
		if compactRev != 0 {
			t.Errorf("CompactRevision()=%d, expected %d", compactRev, 0)
		}

		t.Log("First write")
		putResp, err := client.Put(ctx, "/somekey", "data")
		if err != nil {
			t.Fatalf("Put failed: %v", err)
		}
		assertNotCompacted(t, ctx, client, putResp.Header.Revision)

		t.Log("Second compaction cycle compacts before first write")
		clock.Step(time.Minute)
		waitForClockWaiters(t, clock)
		assertNotCompacted(t, ctx, client, putResp.Header.Revision)
		compactRev = c.CompactRevision()
		if compactRev != putResp.Header.Revision-1 {
			t.Errorf("CompactRevision()=%d, expected %d", compactRev, 0)
		}

		t.Log("Create second revision")
		putResp1, err := client.Put(ctx, "/somekey", "data2")
		if err != nil {
			t.Fatalf("Put failed: %v", err)
		}
		assertNotCompacted(t, ctx, client, putResp1.Header.Revision)

		t.Log("Third compaction cycle compacts revision after first write")
		clock.Step(time.Minute)
		waitForClockWaiters(t, clock)
		assertCompacted(t, ctx, client, putResp.Header.Revision)
		compactRev = c.CompactRevision()
		if compactRev != putResp.Header.Revision+1 {
			t.Errorf("CompactRevision()=%d, expected %d", compactRev, putResp.Header.Revision)
		}

		assertNotCompacted(t, ctx, client, putResp1.Header.Revision)

		t.Log("Fourth compaction cycle compacts second write")
		clock.Step(time.Minute)
		waitForClockWaiters(t, clock)
		assertCompacted(t, ctx, client, putResp.Header.Revision)
		assertCompacted(t, ctx, client, putResp1.Header.Revision)
		compactRev = c.CompactRevision()
		if compactRev != putResp1.Header.Revision+1 {
			t.Errorf("CompactRevision()=%d, expected %d", compactRev, putResp1.Header.Revision)
		}
	})
}

func assertCompacted(t *testing.T, ctx context.Context, client *clientv3.Client, rev int64) {
	t.Helper()
	_, err := client.Get(ctx, "/somekey", clientv3.WithRev(rev))
	if err != etcdrpc.ErrCompacted {
		t.Errorf("Expecting rev %d compacted, but err=%v", rev, err)
	}
}

func assertNotCompacted(t *testing.T, ctx context.Context, client *clientv3.Client, rev int64) {
	t.Helper()
	_, err := client.Get(ctx, "/somekey", clientv3.WithRev(rev))
	if err != nil {
		t.Errorf("Get on rev %d failed: %v", rev, err)
	}
}

func waitForClockWaiters(t *testing.T, clock *testingclock.FakeClock) {
	t.Helper()
	// Upstream waits 100ms; a compaction cycle is a Txn and a Compact over
	// the network here, so allow more.
	for start := time.Now(); time.Since(start) < 50*waitTimeout; {
		if clock.HasWaiters() {
			return
		}
		time.Sleep(waitDelay)
	}
	t.Fatal("No waiters")
}

// TestCompactConflict is compact_test.go's: three compactors racing on the
// same logical time through the compact_rev_key CAS.
func TestCompactConflict(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		client := runIgnetcd(t, env, nil).Client
		ctx := context.Background()

		putResp, err := client.Put(ctx, "/somekey", "data")
		if err != nil {
			t.Fatalf("Put failed: %v", err)
		}

		wantCompactRev := putResp.Header.Revision
		curTime, curRev, compactRev, err := etcd3.Compact(ctx, client, 0, wantCompactRev)
		if err != nil {
			t.Fatalf("compact failed: %v", err)
		}
		if compactRev != wantCompactRev {
			t.Errorf("Expect compact revision = %d, get = %d", wantCompactRev, compactRev)
		}
		if curTime != 1 {
			t.Errorf("Expect current logical time = 1, get = %v", curTime)
		}
		wantCurrentRev := putResp.Header.Revision + 1
		if curRev != wantCurrentRev {
			t.Errorf("Expect current revision = %d, get = %d", wantCurrentRev, curRev)
		}

		curTime2, curRev2, compactRev2, err := etcd3.Compact(ctx, client, 0, wantCompactRev+1)
		if err != nil {
			t.Fatalf("compact failed: %v", err)
		}
		if compactRev2 != wantCompactRev {
			t.Errorf("Expect compact revision = %d, get = %d", wantCompactRev, compactRev2)
		}
		if curTime != curTime2 {
			t.Errorf("Unexpected curTime (%v) != curTime2 (%v)", curTime, curTime2)
		}
		if curRev2 != wantCurrentRev {
			t.Errorf("Expect current revision = %d, get = %d", wantCurrentRev, curRev2)
		}

		curTime3, curRev3, compactRev3, err := etcd3.Compact(ctx, client, 1, wantCompactRev+1)
		if err != nil {
			t.Fatalf("compact failed: %v", err)
		}
		wantCompactRev++
		if compactRev3 != wantCompactRev {
			t.Errorf("Expect compact revision = %d, get = %d", wantCompactRev, compactRev3)
		}
		if curTime3 != 2 {
			t.Errorf("Expect current logical time = 2, get = %v", curTime3)
		}
		wantCurrentRev++
		if curRev3 != wantCurrentRev {
			t.Errorf("Expect current revision = %d, get = %d", wantCurrentRev, curRev3)
		}
	})
}

// TestLinearizedReadRevisionInvariant is linearized_read_test.go's:
// linearizable reads do not bump the revision.
func TestLinearizedReadRevisionInvariant(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, etcdClient := testSetup(t, env)

		dir := "/testing"
		key := dir + "/testkey"
		out := &example.Pod{}
		obj := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo", SelfLink: "testlink"}}

		if err := store.Create(ctx, key, obj, out, 0); err != nil {
			t.Fatalf("Set failed: %v", err)
		}
		originalRevision := out.ResourceVersion

		for i := 0; i < 5; i++ {
			if _, err := etcdClient.KV.Get(ctx, key); err != nil {
				t.Fatalf("failed to get key: %v", err)
			}
		}

		list := &example.PodList{}
		if err := store.GetList(ctx, dir, storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
			t.Errorf("Unexpected List error: %v", err)
		}
		if originalRevision != list.ResourceVersion {
			t.Fatalf("original revision (%s) did not match final revision after linearized reads (%s)", originalRevision, list.ResourceVersion)
		}
	})
}

// TestGetCurrentResourceVersion is store_test.go's: the current RV is the
// global store revision, moved by writes outside the resource.
func TestGetCurrentResourceVersion(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)

		makePod := func(name string) *example.Pod {
			return &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		}
		createPod := func(obj *example.Pod) *example.Pod {
			key := "pods/" + obj.Namespace + "/" + obj.Name
			out := &example.Pod{}
			require.NoError(t, store.Create(context.TODO(), key, obj, out, 0))
			return out
		}
		getPod := func(name, ns string) *example.Pod {
			key := "pods/" + ns + "/" + name
			out := &example.Pod{}
			require.NoError(t, store.Get(context.TODO(), key, storage.GetOptions{}, out))
			return out
		}

		pod := createPod(makePod("pod-1"))
		currentStorageRV, err := store.GetCurrentResourceVersion(context.TODO())
		require.NoError(t, err)
		podRV, err := store.versioner.ParseResourceVersion(pod.ResourceVersion)
		require.NoError(t, err)
		require.Equal(t, currentStorageRV, podRV, "expected the global etcd RV to be equal to pod's RV")

		resp, err := store.client.KV.Put(ctx, "compact_rev_key", pod.ResourceVersion)
		require.NoError(t, err)
		currentStorageRV, err = store.GetCurrentResourceVersion(context.TODO())
		require.NoError(t, err)
		require.Equal(t, currentStorageRV, uint64(resp.Header.Revision), "expected the global etcd RV to be equal to replicaset's RV")

		currentPod := getPod(pod.Name, pod.Namespace)
		currentPodRV, err := store.versioner.ParseResourceVersion(currentPod.ResourceVersion)
		require.NoError(t, err)
		require.Equal(t, currentPodRV, podRV, "didn't expect to see the pod's RV changed")
	})
}

// TestPrefixStats is store_test.go's (Stats counts only keys under the
// resource prefix); SetKeys uses this package's copy of store.getKeys.
func TestPrefixStats(t *testing.T) {
	tcs := []struct {
		name        string
		estimate    bool
		setKeys     bool
		expectStats storage.Stats
	}{
		{name: "SizeBasedListCostEstimate=false,SetKeys=false", expectStats: storage.Stats{ObjectCount: 1}},
		{name: "SizeBasedListCostEstimate=false,SetKeys=true", setKeys: true, expectStats: storage.Stats{ObjectCount: 1}},
		{name: "SizeBasedListCostEstimate=true,SetKeys=false", estimate: true, expectStats: storage.Stats{ObjectCount: 1}},
		{name: "SizeBasedListCostEstimate=true,SetKeys=true", setKeys: true, estimate: true, expectStats: storage.Stats{ObjectCount: 1, EstimatedAverageObjectSizeBytes: 3}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.SizeBasedListCostEstimate, tc.estimate)
			eachEngine(t, func(t *testing.T, env *testEnv) {
				ctx, store, c := testSetup(t, env, withPrefix("/registry"), withResourcePrefix("pods"))
				if tc.setKeys {
					store.SetKeysFunc(store.getKeys)
				}
				for k, v := range map[string]string{"key": "a", "/registry/key": "ab", "/registry/pods/key": "abc", "/registry/podskey": "abcd"} {
					if _, err := c.KV.Put(ctx, k, v); err != nil {
						t.Fatal(err)
					}
				}
				listOut := &example.PodList{}
				// Ignore error as decode is expected to fail
				_ = store.GetList(ctx, "pods", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, listOut)

				gotStats, err := store.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.expectStats, gotStats); diff != "" {
					t.Errorf("Stats diff:\n%s", diff)
				}
			})
		})
	}
}

// TestTooLargeResourceVersionErrorForWatchList is watcher_test.go's, through
// store.Watch instead of store.watcher.Watch (store.Watch only parses the
// RV first): a WatchList from a future RV ends in a 504 with RetryAfter.
func TestTooLargeResourceVersionErrorForWatchList(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.WatchList, true)
	eachEngine(t, func(t *testing.T, env *testEnv) {
		origCtx, store, _ := testSetup(t, env)
		ctx, cancel := context.WithCancel(origCtx)
		defer cancel()
		requestOpts := storage.ListOptions{
			ResourceVersion:   "102",
			SendInitialEvents: ptr.To(true),
			Recursive:         true,
			Predicate: storage.SelectionPredicate{
				Field:               fields.Everything(),
				Label:               labels.Everything(),
				AllowWatchBookmarks: true,
			},
		}
		var expectedErr *apierrors.StatusError
		if !errors.As(storage.NewTooLargeResourceVersionError(uint64(102), 1, 0), &expectedErr) {
			t.Fatalf("Unable to convert NewTooLargeResourceVersionError to apierrors.StatusError")
		}

		w, err := store.Watch(ctx, "/abc", requestOpts)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()

		actualEvent := <-w.ResultChan()
		if actualEvent.Type != watch.Error {
			t.Fatalf("Unexpected type of the event: %v, expected: %v", actualEvent.Type, watch.Error)
		}
		actualErr, ok := actualEvent.Object.(*metav1.Status)
		if !ok {
			t.Fatalf("Expected *apierrors.StatusError, got: %#v", actualEvent.Object)
		}
		if actualErr.Details.RetryAfterSeconds <= 0 {
			t.Fatalf("RetryAfterSeconds must be > 0, actual value: %v", actualErr.Details.RetryAfterSeconds)
		}
		expectedErr.ErrStatus.Details = actualErr.Details
		if diff := cmp.Diff(*actualErr, expectedErr.ErrStatus); diff != "" {
			t.Fatalf("Unexpected error returned, diff: %v", diff)
		}
	})
}
