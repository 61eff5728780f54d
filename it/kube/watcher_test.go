package kube

// k8s.io/apiserver/pkg/storage/etcd3/watcher_test.go's wiring of the generic
// watch tests, on ignetcd.

import (
	"testing"
	"time"

	"k8s.io/apiserver/pkg/features"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
)

func TestWatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatch(ctx, t, store)
	})
}

func TestClusterScopedWatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestClusterScopedWatch(ctx, t, store)
	})
}

func TestNamespaceScopedWatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestNamespaceScopedWatch(ctx, t, store)
	})
}

func TestDeleteTriggerWatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestDeleteTriggerWatch(ctx, t, store)
	})
}

func TestWatchFromZero(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestWatchFromZero(ctx, t, store, compactStorage(store, client.Client))
	})
}

func TestWatchFromNoneZero(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatchFromNonZero(ctx, t, store)
	})
}

func TestDelayedWatchDelivery(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestDelayedWatchDelivery(ctx, t, store)
	})
}

func TestWatchError(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatchError(ctx, t, store)
	})
}

func TestWatchContextCancel(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatchContextCancel(ctx, t, store)
	})
}

func TestWatcherTimeout(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatcherTimeout(ctx, t, store)
	})
}

func TestWatchDeleteEventObjectHaveLatestRV(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV(ctx, t, store)
	})
}

func TestWatchInitializationSignal(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatchInitializationSignal(ctx, t, store)
	})
}

func TestProgressNotify(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env, withProgressNotify(time.Second))
		storagetesting.RunOptionalTestProgressNotify(ctx, t, store, increaseRV(client.Client))
	})
}

func TestWatchWithUnsafeDelete(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.AllowUnsafeMalformedObjectDeletion, true)
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestWatchWithUnsafeDelete(ctx, t, store)
	})
}

// TestWatchDispatchBookmarkEvents: allowWatchBookmarks has no effect on the
// etcd3 store (bookmarks come from the watch cache).
func TestWatchDispatchBookmarkEvents(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env, withProgressNotify(time.Second))
		storagetesting.RunTestWatchDispatchBookmarkEvents(ctx, t, store, false)
	})
}

func TestSendInitialEventsBackwardCompatibility(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunSendInitialEventsBackwardCompatibility(ctx, t, store)
	})
}

func TestEtcdWatchSemantics(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunWatchSemantics(ctx, t, store)
	})
}

func TestEtcdWatchSemanticsWithConcurrentDecode(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ConcurrentWatchObjectDecode, true)
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunWatchSemantics(ctx, t, store)
	})
}

func TestEtcdWatchSemanticInitialEventsExtended(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunWatchSemanticInitialEventsExtended(ctx, t, store)
	})
}

func TestWatchListMatchSingle(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunWatchListMatchSingle(ctx, t, store)
	})
}

func TestWatchErrorEventIsBlockingFurtherEvent(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunWatchErrorIsBlockingFurtherEvents(ctx, t, store)
	})
}
