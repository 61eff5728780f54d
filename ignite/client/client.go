package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// Client is a connection to an Ignite cluster that reconnects on demand. It
// is safe for concurrent use.
type Client struct {
	cfg Config

	mu       sync.Mutex
	cur      *conn
	dialing  chan struct{} // closed when the dial in progress ends
	next     int           // endpoint to try first
	failures int           // consecutive failed connection rounds
	retryAt  time.Time     // no new round before this
	lastErr  error
	closed   bool
	old      []*conn        // lost connections, whose goroutines Close waits for
	wg       sync.WaitGroup // background work (asynchronous closes)
}

// Connect returns a client and makes its first connection, so that
// configuration errors surface at once.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// New returns a client that connects on first use.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("ignite: no endpoints configured")
	}
	cfg = cfg.withDefaults()
	cfg.Endpoints = append([]string(nil), cfg.Endpoints...)
	return &Client{cfg: cfg}, nil
}

// Close closes the current connection (in-flight requests fail with
// ErrClosed) and makes the client unusable.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cur := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cur != nil {
		cur.close(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// ConnInfo describes the current connection.
type ConnInfo struct {
	Endpoint string
	// LocalAddr is the client side of the socket.
	LocalAddr string
	Protocol  wire.Proto
	NodeID    ib.UUID
	Topology  wire.TopologyVersion
}

// Connection makes sure the client is connected and describes the
// connection.
func (c *Client) Connection(ctx context.Context) (ConnInfo, error) {
	cn, err := c.conn(ctx)
	if err != nil {
		return ConnInfo{}, err
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return ConnInfo{Endpoint: cn.endpoint, LocalAddr: cn.nc.LocalAddr().String(), Protocol: cn.proto, NodeID: cn.nodeID, Topology: cn.topology}, nil
}

// conn returns a live connection, connecting if there is none. Concurrent
// callers share one connection attempt.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if c.cur != nil {
			if c.cur.err() == nil {
				cn := c.cur
				c.mu.Unlock()
				return cn, nil
			}
			// Lost: the next attempt starts at the following endpoint. Its
			// goroutines are ending; Close waits for them.
			lost := c.cur
			c.cur = nil
			c.background(func() { lost.close(ErrClosed) })
		}
		if c.dialing != nil {
			ch := c.dialing
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		c.dialing = ch
		wait := time.Until(c.retryAt)
		c.mu.Unlock()

		cn, err := c.connectRound(ctx, wait)

		c.mu.Lock()
		c.dialing = nil
		close(ch)
		if err == nil && c.closed {
			c.mu.Unlock()
			cn.close(ErrClosed)
			return nil, ErrClosed
		}
		if err == nil {
			c.cur = cn
			c.failures = 0
			c.retryAt = time.Time{}
		} else if ctx.Err() == nil {
			c.failures++
			c.retryAt = time.Now().Add(c.backoff(c.failures))
			c.lastErr = err
		}
		c.mu.Unlock()
		return cn, err
	}
}

// backoff returns the pause after n consecutive failed rounds: exponential
// from MinBackoff, capped at MaxBackoff, with jitter.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 1; i < n && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// connectRound waits out the backoff, then tries every endpoint once,
// starting with the one after the endpoint last used.
func (c *Client) connectRound(ctx context.Context, wait time.Duration) (*conn, error) {
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.mu.Lock()
			last := c.lastErr
			c.mu.Unlock()
			if last != nil {
				return nil, fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
			}
			return nil, ctx.Err()
		}
	}
	c.mu.Lock()
	start := c.next
	c.mu.Unlock()
	var errs []error
	var rejected error
	n := len(c.cfg.Endpoints)
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		ep := c.cfg.Endpoints[idx]
		cn, err := dial(ctx, &c.cfg, ep)
		if err == nil {
			c.mu.Lock()
			c.next = (idx + 1) % n
			c.mu.Unlock()
			return cn, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		c.cfg.logf("ignite: connecting to %s: %v", ep, err)
		var he *HandshakeError
		if errors.As(err, &he) {
			rejected = err
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	c.mu.Lock()
	c.next = (start + 1) % n
	c.mu.Unlock()
	if rejected != nil {
		// A server answered and said no (bad credentials, no common
		// version): that is not an outage, report it as such.
		return nil, rejected
	}
	return nil, fmt.Errorf("%w: %w", ErrNoEndpoint, errors.Join(errs...))
}

// do runs one request on the current connection.
func (c *Client) do(ctx context.Context, req wire.Request, decode func([]byte) error) error {
	cn, err := c.conn(ctx)
	if err != nil {
		return err
	}
	return cn.call(ctx, req, nil, decode)
}

// CacheNames lists the caches of the cluster.
func (c *Client) CacheNames(ctx context.Context) ([]string, error) {
	var names []string
	err := c.do(ctx, &wire.EmptyRequest{Code: wire.OpCacheGetNames}, func(p []byte) (err error) {
		names, err = wire.DecodeStrings(p)
		return err
	})
	return names, err
}

// CacheMode says how a cache's data is spread over the cluster.
type CacheMode int

const (
	Partitioned CacheMode = iota // partitions spread over the nodes, with Backups copies each
	Replicated                   // every node holds everything
)

// Atomicity is a cache's atomicity mode.
type Atomicity int

const (
	Transactional Atomicity = iota // supports transactions; ignetcd needs it
	Atomic                         // no transactions (2.16+ rejects them outright)
)

// WriteSync is a cache's write synchronization mode.
type WriteSync int

const (
	FullSync    WriteSync = iota // a write returns when every copy has it
	PrimarySync                  // ... when the primary copy has it
	FullAsync                    // ... at once
)

// CacheConfig configures a cache. The zero values of the modes are the ones
// ignetcd uses: PARTITIONED, TRANSACTIONAL, FULL_SYNC.
type CacheConfig struct {
	Name      string
	Mode      CacheMode
	Atomicity Atomicity
	Backups   int32
	WriteSync WriteSync
	// Extra properties are appended as they are (see wire.CacheProperty);
	// only codes listed in the protocol reference are accepted.
	Extra []wire.CacheProperty
}

func (cc CacheConfig) wire() (wire.CacheConfiguration, error) {
	var mode, atomicity, sync int32
	switch cc.Mode {
	case Partitioned:
		mode = wire.CacheModePartitioned
	case Replicated:
		mode = wire.CacheModeReplicated
	default:
		return wire.CacheConfiguration{}, fmt.Errorf("ignite: unknown cache mode %d", cc.Mode)
	}
	switch cc.Atomicity {
	case Transactional:
		atomicity = wire.AtomicityTransactional
	case Atomic:
		atomicity = wire.AtomicityAtomic
	default:
		return wire.CacheConfiguration{}, fmt.Errorf("ignite: unknown atomicity %d", cc.Atomicity)
	}
	switch cc.WriteSync {
	case FullSync:
		sync = wire.WriteSyncFullSync
	case PrimarySync:
		sync = wire.WriteSyncPrimarySync
	case FullAsync:
		sync = wire.WriteSyncFullAsync
	default:
		return wire.CacheConfiguration{}, fmt.Errorf("ignite: unknown write sync mode %d", cc.WriteSync)
	}
	if cc.Name == "" {
		return wire.CacheConfiguration{}, errors.New("ignite: cache name is empty")
	}
	if cc.Backups < 0 {
		return wire.CacheConfiguration{}, fmt.Errorf("ignite: negative backups %d", cc.Backups)
	}
	props := []wire.CacheProperty{
		{Code: wire.PropName, Value: cc.Name},
		{Code: wire.PropCacheMode, Value: mode},
		{Code: wire.PropAtomicityMode, Value: atomicity},
		{Code: wire.PropBackups, Value: cc.Backups},
		{Code: wire.PropWriteSynchronizationMode, Value: sync},
	}
	return wire.CacheConfiguration{Properties: append(props, cc.Extra...)}, nil
}

// GetOrCreateCache creates the cache if it does not exist. An existing cache
// keeps its configuration, whatever cfg says (that is how Ignite works).
func (c *Client) GetOrCreateCache(ctx context.Context, cfg CacheConfig) (Cache, error) {
	return c.createCache(ctx, wire.OpCacheGetOrCreateWithCfg, cfg)
}

// CreateCache creates the cache; if it exists the error has status
// wire.StatusCacheExists.
func (c *Client) CreateCache(ctx context.Context, cfg CacheConfig) (Cache, error) {
	return c.createCache(ctx, wire.OpCacheCreateWithConfig, cfg)
}

func (c *Client) createCache(ctx context.Context, op wire.Op, cfg CacheConfig) (Cache, error) {
	wcfg, err := cfg.wire()
	if err != nil {
		return Cache{}, err
	}
	if err := c.do(ctx, &wire.CacheConfigRequest{Code: op, Config: wcfg}, nil); err != nil {
		return Cache{}, err
	}
	return c.Cache(cfg.Name), nil
}

// DestroyCache destroys a cache and its data; an unknown cache gives status
// wire.StatusCacheDoesNotExist.
func (c *Client) DestroyCache(ctx context.Context, name string) error {
	return c.do(ctx, &wire.CacheIDRequest{Code: wire.OpCacheDestroy, CacheID: ib.CacheID(name)}, nil)
}
