package kube

// k8s.io/apiserver/pkg/storage/cacher/cacher_test.go's wiring of the generic
// storage tests: the watch cache (Cacher + CacheDelegator, what
// kube-apiserver serves lists and watches from) over the etcd3 store, on
// ignetcd. Tests are named TestCacher<upstream name>. Upstream's
// testSetupWithEtcdServer is replicated with exported API only; the tests
// whose compaction helpers reach into the cacher's unexported fields are not
// run (see README.md).

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/apitesting"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/etcd3"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value/encrypt/identity"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/tools/cache"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	"k8s.io/utils/clock"

	"go.etcd.io/etcd/client/v3/kubernetes"
)

func getPodAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	pod, ok := obj.(*example.Pod)
	if !ok {
		return nil, nil, fmt.Errorf("not a pod")
	}
	f := fields.Set{
		"spec.nodeName":      pod.Spec.NodeName,
		"spec.restartPolicy": string(pod.Spec.RestartPolicy),
		"status.phase":       string(pod.Status.Phase),
		"metadata.name":      pod.Name,
		"metadata.namespace": pod.Namespace,
	}
	return labels.Set(pod.Labels), f, nil
}

type cacherSetupOptions struct {
	resourcePrefix string
	keyFunc        func(runtime.Object) (string, error)
	indexerFuncs   map[string]storage.IndexerFunc
	indexers       cache.Indexers
}

type cacherSetupOption func(*cacherSetupOptions)

func cacherDefaults(o *cacherSetupOptions) {
	prefix := "/pods"
	o.resourcePrefix = prefix
	o.keyFunc = func(obj runtime.Object) (string, error) { return storage.NamespaceKeyFunc(prefix, obj) }
}

func withClusterScopedKeyFunc(o *cacherSetupOptions) {
	o.keyFunc = func(obj runtime.Object) (string, error) { return storage.NoNamespaceKeyFunc(o.resourcePrefix, obj) }
}

// withNodeNameAndNamespaceIndex mirrors pkg/registry/core/pod/strategy.go's indexers.
func withNodeNameAndNamespaceIndex(o *cacherSetupOptions) {
	o.indexerFuncs = map[string]storage.IndexerFunc{
		"spec.nodeName": func(obj runtime.Object) string {
			pod, ok := obj.(*example.Pod)
			if !ok {
				return ""
			}
			return pod.Spec.NodeName
		},
	}
	o.indexers = map[string]cache.IndexFunc{
		"f:spec.nodeName": func(obj interface{}) ([]string, error) {
			return []string{obj.(*example.Pod).Spec.NodeName}, nil
		},
		"f:metadata.namespace": func(obj interface{}) ([]string, error) {
			return []string{obj.(*example.Pod).Namespace}, nil
		},
	}
}

// cacherSetup is upstream's testSetupWithEtcdServer on an ignetcd node of env.
func cacherSetup(t *testing.T, env *testEnv, opts ...cacherSetupOption) (context.Context, *cacher.CacheDelegator, *kubernetes.Client) {
	o := cacherSetupOptions{}
	for _, opt := range append([]cacherSetupOption{cacherDefaults}, opts...) {
		opt(&o)
	}
	client := runIgnetcd(t, env, nil)
	versioner := storage.APIObjectVersioner{}
	codec := apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion)
	compactor := etcd3.NewCompactor(client.Client, 0, clock.RealClock{}, nil)
	t.Cleanup(compactor.Stop)
	etcdStorage := etcd3.New(client, compactor, codec, newPod, newPodList, "/registry", "/pods",
		schema.GroupResource{Resource: "pods"}, identity.NewEncryptCheckTransformer(),
		etcd3.NewDefaultLeaseManagerConfig(), etcd3.NewDefaultDecoder(codec, versioner), versioner)
	t.Cleanup(etcdStorage.Close)
	// As upstream: inject one list error to test the relist case.
	wrapped := &storagetesting.StorageInjectingListErrors{Interface: etcdStorage, Errors: 1}
	config := cacher.Config{
		Storage:             wrapped,
		Versioner:           versioner,
		GroupResource:       schema.GroupResource{Resource: "pods"},
		EventsHistoryWindow: cacher.DefaultEventFreshDuration,
		ResourcePrefix:      o.resourcePrefix,
		KeyFunc:             o.keyFunc,
		GetAttrsFunc:        getPodAttrs,
		NewFunc:             newPod,
		NewListFunc:         newPodList,
		IndexerFuncs:        o.indexerFuncs,
		Indexers:            &o.indexers,
		Codec:               codecs.LegacyCodec(examplev1.SchemeGroupVersion),
		Clock:               clock.RealClock{},
	}
	c, err := cacher.NewCacherFromConfig(config)
	if err != nil {
		t.Fatalf("Failed to initialize cacher: %v", err)
	}
	ctx := context.Background()
	if err := wait.PollInfinite(100*time.Millisecond, wrapped.ErrorsConsumed); err != nil {
		t.Fatalf("Failed to inject list errors: %v", err)
	}
	// Upstream waits only with ResilientWatchCacheInitialization (on by
	// default); waiting always is harmless.
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	d := cacher.NewCacheDelegator(c, wrapped)
	t.Cleanup(func() {
		d.Stop()
		c.Stop()
	})
	return ctx, d, client
}

// createWrapper is upstream's: Create returns once the cache serves the object.
type createWrapper struct {
	*cacher.CacheDelegator
}

func (c *createWrapper) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	if err := c.CacheDelegator.Create(ctx, key, obj, out, ttl); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, wait.ForeverTestTimeout, true, func(ctx context.Context) (bool, error) {
		current := newPod()
		err := c.CacheDelegator.Get(ctx, key, storage.GetOptions{ResourceVersion: "0"}, current)
		if err != nil {
			if storage.IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		return apiequality.Semantic.DeepEqual(current, out), nil
	})
}

func cacherWithCreateWrapper(t *testing.T, env *testEnv) storage.Interface {
	_, d, _ := cacherSetup(t, env)
	return &createWrapper{CacheDelegator: d}
}

func noStorageInvariants(context.Context, *testing.T, string) {}

func noStorageCalls(*testing.T, uint64, uint64) {}

// cacherTest wires one upstream cacher test that needs nothing but the delegator.
func cacherTest(t *testing.T, run func(context.Context, *testing.T, storage.Interface), opts ...cacherSetupOption) {
	eachEngineOf(t, cacherEngines, func(t *testing.T, env *testEnv) {
		ctx, d, _ := cacherSetup(t, env, opts...)
		run(ctx, t, d)
	})
}

func TestCacherCreate(t *testing.T) {
	cacherTest(t, func(ctx context.Context, t *testing.T, s storage.Interface) {
		storagetesting.RunTestCreate(ctx, t, s, noStorageInvariants)
	})
}

func TestCacherCreateWithTTL(t *testing.T) { cacherTest(t, storagetesting.RunTestCreateWithTTL) }
func TestCacherCreateWithKeyExist(t *testing.T) {
	cacherTest(t, storagetesting.RunTestCreateWithKeyExist)
}
func TestCacherGet(t *testing.T) { cacherTest(t, storagetesting.RunTestGet) }
func TestCacherUnconditionalDelete(t *testing.T) {
	cacherTest(t, storagetesting.RunTestUnconditionalDelete)
}
func TestCacherConditionalDelete(t *testing.T) {
	cacherTest(t, storagetesting.RunTestConditionalDelete)
}
func TestCacherDeleteWithSuggestion(t *testing.T) {
	cacherTest(t, storagetesting.RunTestDeleteWithSuggestion)
}
func TestCacherDeleteWithSuggestionAndConflict(t *testing.T) {
	cacherTest(t, storagetesting.RunTestDeleteWithSuggestionAndConflict)
}
func TestCacherDeleteWithSuggestionOfDeletedObject(t *testing.T) {
	cacherTest(t, storagetesting.RunTestDeleteWithSuggestionOfDeletedObject)
}
func TestCacherValidateDeletionWithSuggestion(t *testing.T) {
	cacherTest(t, storagetesting.RunTestValidateDeletionWithSuggestion)
}
func TestCacherValidateDeletionWithOnlySuggestionValid(t *testing.T) {
	cacherTest(t, storagetesting.RunTestValidateDeletionWithOnlySuggestionValid)
}
func TestCacherDeleteWithConflict(t *testing.T) {
	cacherTest(t, storagetesting.RunTestDeleteWithConflict)
}
func TestCacherPreconditionalDeleteWithSuggestion(t *testing.T) {
	cacherTest(t, storagetesting.RunTestPreconditionalDeleteWithSuggestion)
}
func TestCacherPreconditionalDeleteWithSuggestionPass(t *testing.T) {
	cacherTest(t, storagetesting.RunTestPreconditionalDeleteWithOnlySuggestionPass)
}
func TestCacherListPaging(t *testing.T) { cacherTest(t, storagetesting.RunTestListPaging) }

// TestCacherLists is upstream's TestLists without its "List" subtest when
// ListFromCacheSnapshot is on (its compactStore calls the cacher's
// unexported compactor); the subtests run sequentially, not in parallel.
func TestCacherLists(t *testing.T) {
	for _, consistentRead := range []bool{true, false} {
		for _, listFromCacheSnapshot := range []bool{true, false} {
			t.Run(fmt.Sprintf("ConsistentListFromCache=%v,ListFromCacheSnapshot=%v", consistentRead, listFromCacheSnapshot), func(t *testing.T) {
				featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ListFromCacheSnapshot, listFromCacheSnapshot)
				if !consistentRead {
					featuregatetesting.SetFeatureGateEmulationVersionDuringTest(t, utilfeature.DefaultFeatureGate, version.MustParse("1.33"))
					featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.ConsistentListFromCache, false)
				}
				if !listFromCacheSnapshot {
					t.Run("List", func(t *testing.T) {
						eachEngineOf(t, cacherEngines, func(t *testing.T, env *testEnv) {
							ctx, d, client := cacherSetup(t, env)
							storagetesting.RunTestList(ctx, t, d, compactEtcd(client), true, client.Kubernetes.(*storagetesting.KubernetesRecorder))
						})
					})
				}
				t.Run("ConsistentList", func(t *testing.T) {
					eachEngineOf(t, cacherEngines, func(t *testing.T, env *testEnv) {
						ctx, d, client := cacherSetup(t, env)
						storagetesting.RunTestConsistentList(ctx, t, d, increaseRV(client.Client), true, consistentRead, listFromCacheSnapshot)
					})
				})
				t.Run("GetListNonRecursive", func(t *testing.T) {
					eachEngineOf(t, cacherEngines, func(t *testing.T, env *testEnv) {
						ctx, d, client := cacherSetup(t, env)
						storagetesting.RunTestGetListNonRecursive(ctx, t, increaseRV(client.Client), d)
					})
				})
			})
		}
	}
}

// compactEtcd is upstream's compactStore with ListFromCacheSnapshot off
// (the cacher then has no compactor to poke): the compaction CAS + Compact.
func compactEtcd(client *kubernetes.Client) storagetesting.Compaction {
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		rv, err := storage.APIObjectVersioner{}.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		var currentVersion int64
		currentVersion, _, _, err = etcd3.Compact(ctx, client.Client, currentVersion, int64(rv))
		if err != nil {
			_, _, _, err = etcd3.Compact(ctx, client.Client, currentVersion, int64(rv))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCacherGetListRecursivePrefix(t *testing.T) {
	cacherTest(t, storagetesting.RunTestGetListRecursivePrefix)
}
func TestCacherListContinuation(t *testing.T) {
	cacherTest(t, func(ctx context.Context, t *testing.T, s storage.Interface) {
		storagetesting.RunTestListContinuation(ctx, t, s, noStorageCalls)
	})
}
func TestCacherListPaginationRareObject(t *testing.T) {
	cacherTest(t, func(ctx context.Context, t *testing.T, s storage.Interface) {
		storagetesting.RunTestListPaginationRareObject(ctx, t, s, noStorageCalls)
	})
}
func TestCacherListContinuationWithFilter(t *testing.T) {
	cacherTest(t, func(ctx context.Context, t *testing.T, s storage.Interface) {
		storagetesting.RunTestListContinuationWithFilter(ctx, t, s, noStorageCalls)
	})
}
func TestCacherNamespaceScopedList(t *testing.T) {
	cacherTest(t, storagetesting.RunTestNamespaceScopedList, withNodeNameAndNamespaceIndex)
}
func TestCacherGuaranteedUpdateWithTTL(t *testing.T) {
	cacherTest(t, storagetesting.RunTestGuaranteedUpdateWithTTL)
}
func TestCacherGuaranteedUpdateWithConflict(t *testing.T) {
	cacherTest(t, storagetesting.RunTestGuaranteedUpdateWithConflict)
}
func TestCacherGuaranteedUpdateWithSuggestionAndConflict(t *testing.T) {
	cacherTest(t, storagetesting.RunTestGuaranteedUpdateWithSuggestionAndConflict)
}

func TestCacherStats(t *testing.T) {
	for _, sizeBasedListCostEstimate := range []bool{true, false} {
		t.Run(fmt.Sprintf("SizeBasedListCostEstimate=%v", sizeBasedListCostEstimate), func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.SizeBasedListCostEstimate, sizeBasedListCostEstimate)
			cacherTest(t, func(ctx context.Context, t *testing.T, s storage.Interface) {
				storagetesting.RunTestStats(ctx, t, s, codecs.LegacyCodec(examplev1.SchemeGroupVersion), identity.NewEncryptCheckTransformer(), sizeBasedListCostEstimate)
			})
		})
	}
}

func TestCacherWatch(t *testing.T) { cacherTest(t, storagetesting.RunTestWatch) }
func TestCacherDeleteTriggerWatch(t *testing.T) {
	cacherTest(t, storagetesting.RunTestDeleteTriggerWatch)
}
func TestCacherWatchFromNonZero(t *testing.T) { cacherTest(t, storagetesting.RunTestWatchFromNonZero) }
func TestCacherDelayedWatchDelivery(t *testing.T) {
	cacherTest(t, storagetesting.RunTestDelayedWatchDelivery)
}
func TestCacherWatcherTimeout(t *testing.T) { cacherTest(t, storagetesting.RunTestWatcherTimeout) }
func TestCacherWatchDeleteEventObjectHaveLatestRV(t *testing.T) {
	cacherTest(t, storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV)
}
func TestCacherWatchInitializationSignal(t *testing.T) {
	cacherTest(t, storagetesting.RunTestWatchInitializationSignal)
}
func TestCacherClusterScopedWatch(t *testing.T) {
	cacherTest(t, storagetesting.RunTestClusterScopedWatch, withClusterScopedKeyFunc, withNodeNameAndNamespaceIndex)
}
func TestCacherNamespaceScopedWatch(t *testing.T) {
	cacherTest(t, storagetesting.RunTestNamespaceScopedWatch, withNodeNameAndNamespaceIndex)
}
func TestCacherWatchDispatchBookmarkEvents(t *testing.T) {
	cacherTest(t, func(ctx context.Context, t *testing.T, s storage.Interface) {
		storagetesting.RunTestWatchDispatchBookmarkEvents(ctx, t, s, true)
	})
}
func TestCacherWatchBookmarksWithCorrectResourceVersion(t *testing.T) {
	cacherTest(t, storagetesting.RunTestOptionalWatchBookmarksWithCorrectResourceVersion)
}
func TestCacherSendInitialEventsBackwardCompatibility(t *testing.T) {
	cacherTest(t, storagetesting.RunSendInitialEventsBackwardCompatibility)
}

func TestCacherWatchSemantics(t *testing.T) {
	eachEngineOf(t, cacherEngines, func(t *testing.T, env *testEnv) {
		storagetesting.RunWatchSemantics(context.TODO(), t, cacherWithCreateWrapper(t, env))
	})
}

func TestCacherWatchSemanticInitialEventsExtended(t *testing.T) {
	eachEngineOf(t, cacherEngines, func(t *testing.T, env *testEnv) {
		storagetesting.RunWatchSemanticInitialEventsExtended(context.TODO(), t, cacherWithCreateWrapper(t, env))
	})
}

func TestCacherWatchListMatchSingle(t *testing.T) {
	eachEngineOf(t, cacherEngines, func(t *testing.T, env *testEnv) {
		storagetesting.RunWatchListMatchSingle(context.TODO(), t, cacherWithCreateWrapper(t, env))
	})
}
