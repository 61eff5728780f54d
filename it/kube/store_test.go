package kube

// k8s.io/apiserver/pkg/storage/etcd3/store_test.go's wiring of the generic
// storage tests (storagetesting.RunTest*), on ignetcd. Each test runs once
// per engine, as subtests "memory" and "ignite".

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
)

// maxLimit is etcd3's maxLimit (store.go).
const maxLimit = 10000

func checkStorageInvariants(etcdClient *clientv3.Client, codec runtime.Codec) storagetesting.KeyValidation {
	return func(ctx context.Context, t *testing.T, key string) {
		getResp, err := etcdClient.KV.Get(ctx, key)
		if err != nil {
			t.Fatalf("etcdClient.KV.Get failed: %v", err)
		}
		if len(getResp.Kvs) == 0 {
			t.Fatalf("expecting non empty result on key: %s", key)
		}
		decoded, err := runtime.Decode(codec, getResp.Kvs[0].Value[len(defaultTestPrefix):])
		if err != nil {
			t.Fatalf("expecting successful decode of object from %v\n%v", err, string(getResp.Kvs[0].Value))
		}
		obj := decoded.(*example.Pod)
		if obj.ResourceVersion != "" {
			t.Errorf("stored object should have empty resource version")
		}
		if obj.SelfLink != "" {
			t.Errorf("stored output should have empty selfLink")
		}
	}
}

func checkStorageCallsInvariants(transformer *storagetesting.PrefixTransformer, recorder *storagetesting.KVRecorder) storagetesting.CallsValidation {
	return func(t *testing.T, pageSize, estimatedProcessedObjects uint64) {
		if reads := transformer.GetReadsAndReset(); reads != estimatedProcessedObjects {
			t.Errorf("unexpected reads: %d, expected: %d", reads, estimatedProcessedObjects)
		}
		estimatedGetCalls := uint64(1)
		if pageSize != 0 {
			currLimit := pageSize
			for sum := uint64(1); sum < estimatedProcessedObjects; {
				currLimit *= 2
				if currLimit > maxLimit {
					currLimit = maxLimit
				}
				sum += currLimit
				estimatedGetCalls++
			}
		}
		if reads := recorder.GetReadsAndReset(); reads != estimatedGetCalls {
			t.Fatalf("unexpected reads: %d, want: %d", reads, estimatedGetCalls)
		}
	}
}

func compactStorage(s *kstore, client *clientv3.Client) storagetesting.Compaction {
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		versioner := storage.APIObjectVersioner{}
		rv, err := versioner.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		var currentVersion int64
		currentVersion, _, _, err = etcd3.Compact(ctx, client, currentVersion, int64(rv))
		if err != nil {
			_, _, _, err = etcd3.Compact(ctx, client, currentVersion, int64(rv))
		}
		if err != nil {
			t.Fatal(err)
		}
		// Wait for compaction to be observed.
		if utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
			for {
				select {
				case <-ctx.Done():
					t.Fatal(ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
				compactedRev := s.CompactRevision()
				if compactedRev == int64(rv) {
					break
				}
			}
		}
	}
}

func increaseRV(client *clientv3.Client) storagetesting.IncreaseRVFunc {
	return func(ctx context.Context, t *testing.T) {
		if _, err := client.KV.Put(ctx, "increaseRV", "ok"); err != nil {
			t.Fatalf("Could not update increaseRV: %v", err)
		}
	}
}

func TestCreate(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestCreate(ctx, t, store, checkStorageInvariants(client.Client, store.codec))
	})
}

func TestCreateWithTTL(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestCreateWithTTL(ctx, t, store)
	})
}

func TestCreateWithKeyExist(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestCreateWithKeyExist(ctx, t, store)
	})
}

func TestGet(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestGet(ctx, t, store)
	})
}

func TestUnconditionalDelete(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestUnconditionalDelete(ctx, t, store)
	})
}

func TestConditionalDelete(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestConditionalDelete(ctx, t, store)
	})
}

func TestDeleteWithSuggestion(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestDeleteWithSuggestion(ctx, t, store)
	})
}

func TestDeleteWithSuggestionAndConflict(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestDeleteWithSuggestionAndConflict(ctx, t, store)
	})
}

func TestDeleteWithSuggestionOfDeletedObject(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestDeleteWithSuggestionOfDeletedObject(ctx, t, store)
	})
}

func TestValidateDeletionWithSuggestion(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestValidateDeletionWithSuggestion(ctx, t, store)
	})
}

func TestValidateDeletionWithOnlySuggestionValid(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestValidateDeletionWithOnlySuggestionValid(ctx, t, store)
	})
}

func TestDeleteWithConflict(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestDeleteWithConflict(ctx, t, store)
	})
}

func TestPreconditionalDeleteWithSuggestion(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestPreconditionalDeleteWithSuggestion(ctx, t, store)
	})
}

func TestPreconditionalDeleteWithSuggestionPass(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestPreconditionalDeleteWithOnlySuggestionPass(ctx, t, store)
	})
}

func TestListPaging(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestListPaging(ctx, t, store)
	})
}

func TestGetListNonRecursive(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestGetListNonRecursive(ctx, t, increaseRV(client.Client), store)
	})
}

func TestGetListRecursivePrefix(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestGetListRecursivePrefix(ctx, t, store)
	})
}

func TestGuaranteedUpdate(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestGuaranteedUpdate(ctx, t, store, checkStorageInvariants(client.Client, store.codec))
	})
}

func TestGuaranteedUpdateWithTTL(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestGuaranteedUpdateWithTTL(ctx, t, store)
	})
}

func TestGuaranteedUpdateChecksStoredData(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestGuaranteedUpdateChecksStoredData(ctx, t, store)
	})
}

func TestGuaranteedUpdateWithConflict(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestGuaranteedUpdateWithConflict(ctx, t, store)
	})
}

func TestGuaranteedUpdateWithSuggestionAndConflict(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestGuaranteedUpdateWithSuggestionAndConflict(ctx, t, store)
	})
}

func TestTransformationFailure(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestTransformationFailure(ctx, t, store)
	})
}

func TestList(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestList(ctx, t, store, compactStorage(store, client.Client), false, client.Kubernetes.(*storagetesting.KubernetesRecorder))
	})
}

func TestConsistentList(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestConsistentList(ctx, t, store, increaseRV(client.Client), false, true, false)
	})
}

func TestCompactRevision(t *testing.T) {
	// As upstream: the store observes external changes of the compaction
	// revision through its watch on compact_rev_key (ListFromCacheSnapshot).
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ListFromCacheSnapshot, true)
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestCompactRevision(ctx, t, store, increaseRV(client.Client), compactStorage(store, client.Client))
	})
}

func TestListContinuation(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		validation := checkStorageCallsInvariants(store.transformer, client.KV.(*storagetesting.KVRecorder))
		storagetesting.RunTestListContinuation(ctx, t, store, validation)
	})
}

func TestListPaginationRareObject(t *testing.T) {
	// As upstream: ListFromCacheSnapshot adds a Get of the compact key.
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ListFromCacheSnapshot, false)
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		validation := checkStorageCallsInvariants(store.transformer, client.KV.(*storagetesting.KVRecorder))
		storagetesting.RunTestListPaginationRareObject(ctx, t, store, validation)
	})
}

func TestListContinuationWithFilter(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		validation := checkStorageCallsInvariants(store.transformer, client.KV.(*storagetesting.KVRecorder))
		storagetesting.RunTestListContinuationWithFilter(ctx, t, store, validation)
	})
}

func TestNamespaceScopedList(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestNamespaceScopedList(ctx, t, store)
	})
}

func TestListInconsistentContinuation(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, client := testSetup(t, env)
		storagetesting.RunTestListInconsistentContinuation(ctx, t, store, compactStorage(store, client.Client))
	})
}

func TestListResourceVersionMatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, env *testEnv) {
		ctx, store, _ := testSetup(t, env)
		storagetesting.RunTestListResourceVersionMatch(ctx, t, store)
	})
}

func TestStats(t *testing.T) {
	for _, sizeBasedListCostEstimate := range []bool{true, false} {
		t.Run(fmt.Sprintf("SizeBasedListCostEstimate=%v", sizeBasedListCostEstimate), func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.SizeBasedListCostEstimate, sizeBasedListCostEstimate)
			eachEngine(t, func(t *testing.T, env *testEnv) {
				ctx, store, _ := testSetup(t, env)
				store.SetKeysFunc(store.getKeys)
				storagetesting.RunTestStats(ctx, t, store, store.codec, store.transformer, sizeBasedListCostEstimate)
			})
		})
	}
}
