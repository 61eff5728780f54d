package kube

// The setup of k8s.io/apiserver/pkg/storage/etcd3's own tests (testSetup in
// store_test.go, RunEtcd in etcd3/testserver), with the etcd server replaced
// by an ignetcd node started in-process. The store comes from etcd3.New,
// exactly as in upstream; what upstream reaches through the store's
// unexported fields (transformer, codec, getKeys) is held here instead.

import (
	"context"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"

	"k8s.io/apimachinery/pkg/api/apitesting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/utils/clock"

	"github.com/ignetcd/ignetcd/embed"
)

var scheme = runtime.NewScheme()
var codecs = serializer.NewCodecFactory(scheme)

const defaultTestPrefix = "test!"

func init() {
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	utilruntime.Must(example.AddToScheme(scheme))
	utilruntime.Must(examplev1.AddToScheme(scheme))

	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
}

func newPod() runtime.Object     { return &example.Pod{} }
func newPodList() runtime.Object { return &example.PodList{} }

// etcd3Store is what etcd3.New returns (an unexported *store), by its
// exported methods.
type etcd3Store interface {
	storage.Interface
	CompactRevision() int64
	SetKeysFunc(storage.KeysFunc)
	Close()
}

// swapTransformer is the transformer handed to etcd3.New. Upstream's
// storeWithPrefixTransformer and storeWithCorruptedTransformer replace the
// store's transformer field; here the store keeps this one and the tests
// swap what it delegates to.
type swapTransformer struct {
	mu  sync.RWMutex
	cur value.Transformer
}

func (s *swapTransformer) get() value.Transformer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

func (s *swapTransformer) set(t value.Transformer) {
	s.mu.Lock()
	s.cur = t
	s.mu.Unlock()
}

func (s *swapTransformer) TransformFromStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, bool, error) {
	return s.get().TransformFromStorage(ctx, data, dataCtx)
}

func (s *swapTransformer) TransformToStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, error) {
	return s.get().TransformToStorage(ctx, data, dataCtx)
}

// kstore is the etcd3 store under test plus the pieces upstream's tests
// read from its unexported fields.
type kstore struct {
	etcd3Store
	codec          runtime.Codec
	versioner      storage.Versioner
	transformer    *storagetesting.PrefixTransformer // the base transformer
	swap           *swapTransformer
	client         *kubernetes.Client
	pathPrefix     string
	resourcePrefix string
}

// UpdatePrefixTransformer makes kstore a storagetesting.InterfaceWithPrefixTransformer
// (upstream: storeWithPrefixTransformer).
func (s *kstore) UpdatePrefixTransformer(modifier storagetesting.PrefixTransformerModifier) func() {
	original := s.swap.get()
	pt, ok := original.(*storagetesting.PrefixTransformer)
	if !ok {
		panic("UpdatePrefixTransformer: the current transformer is not a PrefixTransformer")
	}
	copied := *pt
	s.swap.set(modifier(&copied))
	return func() { s.swap.set(original) }
}

// CorruptTransformer makes kstore a storagetesting.InterfaceWithCorruptTransformer
// (upstream: storeWithCorruptedTransformer). Upstream returns etcd3's
// unexported corruptObjectError; etcd3.WithCorruptObjErrorHandlingTransformer
// wraps any transformer error into it, as kube-apiserver's storage factory does.
func (s *kstore) CorruptTransformer() func() {
	original := s.swap.get()
	s.swap.set(etcd3.WithCorruptObjErrorHandlingTransformer(corruptedTransformer{original}))
	return func() { s.swap.set(original) }
}

type corruptedTransformer struct{ value.Transformer }

func (corruptedTransformer) TransformFromStorage(context.Context, []byte, value.Context) ([]byte, bool, error) {
	return nil, true, errBitsFlipped
}

type bitsFlipped struct{}

func (bitsFlipped) Error() string { return "bits flipped" }

var errBitsFlipped error = bitsFlipped{}

// getKeys is etcd3's store.getKeys (unexported there): the keys under the
// resource prefix.
func (s *kstore) getKeys(ctx context.Context) ([]string, error) {
	prefix := strings.TrimSuffix(s.pathPrefix, "/") + "/" + strings.TrimPrefix(s.resourcePrefix, "/")
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	resp, err := s.client.KV.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys, nil
}

type setupOptions struct {
	node           func(*embed.Config)
	codec          runtime.Codec
	newFunc        func() runtime.Object
	newListFunc    func() runtime.Object
	prefix         string
	resourcePrefix string
	groupResource  schema.GroupResource
	leaseConfig    etcd3.LeaseManagerConfig
}

type setupOption func(*setupOptions)

// withProgressNotify is upstream's withClientConfig(cfg) with
// cfg.WatchProgressNotifyInterval = time.Second.
func withProgressNotify(d time.Duration) setupOption {
	return func(o *setupOptions) {
		o.node = func(c *embed.Config) { c.WatchProgressNotifyInterval = d }
	}
}

func withPrefix(prefix string) setupOption {
	return func(o *setupOptions) { o.prefix = prefix }
}

func withResourcePrefix(prefix string) setupOption {
	return func(o *setupOptions) { o.resourcePrefix = prefix }
}

func withLeaseConfig(cfg etcd3.LeaseManagerConfig) setupOption {
	return func(o *setupOptions) { o.leaseConfig = cfg }
}

func newTestLeaseManagerConfig() etcd3.LeaseManagerConfig {
	cfg := etcd3.NewDefaultLeaseManagerConfig()
	// As upstream: wait.ForeverTestTimeout is 30s, so reuse leases for 1s only.
	cfg.ReuseDurationSeconds = 1
	return cfg
}

func withDefaults(o *setupOptions) {
	o.codec = apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion)
	o.newFunc = newPod
	o.newListFunc = newPodList
	o.prefix = ""
	o.resourcePrefix = "/pods"
	o.groupResource = schema.GroupResource{Resource: "pods"}
	o.leaseConfig = newTestLeaseManagerConfig()
}

// runIgnetcd is etcd3/testserver.RunEtcd for ignetcd: a node of env, and a
// kubernetes client on it whose KV and Kubernetes interfaces are recorded.
func runIgnetcd(t testing.TB, env *testEnv, cfg func(*embed.Config)) *kubernetes.Client {
	t.Helper()
	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   env.endpoints(t, cfg),
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	client.KV = storagetesting.NewKVRecorder(client.KV)
	client.Kubernetes = storagetesting.NewKubernetesRecorder(client.Kubernetes)
	return client
}

// testSetup is upstream's testSetup on an ignetcd node of env.
func testSetup(t testing.TB, env *testEnv, opts ...setupOption) (context.Context, *kstore, *kubernetes.Client) {
	o := setupOptions{}
	for _, opt := range append([]setupOption{withDefaults}, opts...) {
		opt(&o)
	}
	client := runIgnetcd(t, env, o.node)
	versioner := storage.APIObjectVersioner{}
	compactor := etcd3.NewCompactor(client.Client, 0, clock.RealClock{}, nil)
	t.Cleanup(compactor.Stop)
	base := storagetesting.NewPrefixTransformer([]byte(defaultTestPrefix), false)
	swap := &swapTransformer{cur: base}
	s := etcd3.New(
		client,
		compactor,
		o.codec,
		o.newFunc,
		o.newListFunc,
		o.prefix,
		o.resourcePrefix,
		o.groupResource,
		swap,
		o.leaseConfig,
		etcd3.NewDefaultDecoder(o.codec, versioner),
		versioner,
	)
	t.Cleanup(s.Close)
	pathPrefix := path.Join("/", o.prefix)
	if !strings.HasSuffix(pathPrefix, "/") {
		pathPrefix += "/"
	}
	ks := &kstore{
		etcd3Store: s, codec: o.codec, versioner: versioner, transformer: base, swap: swap,
		client: client, pathPrefix: pathPrefix, resourcePrefix: o.resourcePrefix,
	}
	return context.Background(), ks, client
}
