package client

import (
	"context"
	"fmt"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
	"github.com/ignetcd/ignetcd/ignite/wire"
)

// KV is a key and a value.
type KV = wire.KV

// Cache is a handle on a named cache; it is a small value, cheap to copy.
// Operations on a handle made by WithTx run inside that transaction.
type Cache struct {
	client *Client
	name   string
	id     int32
	tx     *Tx
}

// Cache returns a handle on the named cache. It does not check that the
// cache exists: operations on a missing cache fail with status
// wire.StatusCacheDoesNotExist.
func (c *Client) Cache(name string) Cache {
	return Cache{client: c, name: name, id: ib.CacheID(name)}
}

// Name returns the cache name.
func (cc Cache) Name() string { return cc.name }

// WithTx returns a handle whose operations run inside tx (nil: outside any
// transaction). The cache must be TRANSACTIONAL.
func (cc Cache) WithTx(tx *Tx) Cache {
	cc.tx = tx
	return cc
}

func (cc Cache) header() wire.CacheHeader { return wire.CacheHeader{CacheID: cc.id} }

func (cc Cache) call(ctx context.Context, req wire.Request, hdr *wire.CacheHeader, decode func([]byte) error) error {
	if cc.tx != nil {
		return cc.tx.call(ctx, req, hdr, decode)
	}
	return cc.client.do(ctx, req, decode)
}

func (cc Cache) value(ctx context.Context, op wire.Op, key any) (any, error) {
	req := &wire.CacheKeyRequest{Code: op, CacheHeader: cc.header(), Key: key}
	var v any
	err := cc.call(ctx, req, &req.CacheHeader, func(p []byte) (err error) {
		v, err = wire.DecodeValue(p)
		return err
	})
	return v, err
}

func (cc Cache) keyBool(ctx context.Context, op wire.Op, key any) (bool, error) {
	req := &wire.CacheKeyRequest{Code: op, CacheHeader: cc.header(), Key: key}
	var ok bool
	err := cc.call(ctx, req, &req.CacheHeader, func(p []byte) (err error) {
		ok, err = wire.DecodeBool(p)
		return err
	})
	return ok, err
}

func (cc Cache) kvCall(ctx context.Context, op wire.Op, key, value any, decode func([]byte) error) error {
	req := &wire.CacheKeyValueRequest{Code: op, CacheHeader: cc.header(), Key: key, Value: value}
	return cc.call(ctx, req, &req.CacheHeader, decode)
}

func (cc Cache) kvBool(ctx context.Context, op wire.Op, key, value any) (bool, error) {
	var ok bool
	err := cc.kvCall(ctx, op, key, value, func(p []byte) (err error) {
		ok, err = wire.DecodeBool(p)
		return err
	})
	return ok, err
}

func (cc Cache) kvValue(ctx context.Context, op wire.Op, key, value any) (any, error) {
	var v any
	err := cc.kvCall(ctx, op, key, value, func(p []byte) (err error) {
		v, err = wire.DecodeValue(p)
		return err
	})
	return v, err
}

// Get returns the value of key, nil if absent. In a PESSIMISTIC
// REPEATABLE_READ or SERIALIZABLE transaction it locks the key, present or not.
func (cc Cache) Get(ctx context.Context, key any) (any, error) {
	return cc.value(ctx, wire.OpCacheGet, key)
}

// GetAll returns the entries of the keys that exist, in the server's order.
func (cc Cache) GetAll(ctx context.Context, keys []any) ([]KV, error) {
	req := &wire.CacheKeysRequest{Code: wire.OpCacheGetAll, CacheHeader: cc.header(), Keys: keys}
	var out []KV
	err := cc.call(ctx, req, &req.CacheHeader, func(p []byte) (err error) {
		out, err = wire.DecodeEntries(p)
		return err
	})
	return out, err
}

// GetAllBytes reads byte[] keys and returns one value per key, in the order
// of keys, nil where a key is absent. Values must be byte[] (or null).
func (cc Cache) GetAllBytes(ctx context.Context, keys [][]byte) ([][]byte, error) {
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	entries, err := cc.GetAll(ctx, args)
	if err != nil {
		return nil, err
	}
	found := make(map[string][]byte, len(entries))
	for _, e := range entries {
		k, ok := e.Key.([]byte)
		if !ok {
			return nil, fmt.Errorf("%w: %s: key of type %T in a byte[] read", ErrProtocol, cc.name, e.Key)
		}
		switch v := e.Value.(type) {
		case []byte:
			found[string(k)] = v
		case nil:
		default:
			return nil, fmt.Errorf("ignite: %s: value of type %T is not byte[]", cc.name, e.Value)
		}
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = found[string(k)]
	}
	return out, nil
}

// Put stores value under key.
func (cc Cache) Put(ctx context.Context, key, value any) error {
	return cc.kvCall(ctx, wire.OpCachePut, key, value, nil)
}

// PutAll stores the entries.
func (cc Cache) PutAll(ctx context.Context, entries []KV) error {
	if len(entries) == 0 {
		return nil
	}
	req := &wire.CachePutAllRequest{CacheHeader: cc.header(), Entries: entries}
	return cc.call(ctx, req, &req.CacheHeader, nil)
}

// PutAllBytes stores entries of byte[] keys and values; it sends what
// PutAll sends for them, allocating less.
func (cc Cache) PutAllBytes(ctx context.Context, entries []wire.BytesKV) error {
	if len(entries) == 0 {
		return nil
	}
	req := &wire.CachePutAllBytesRequest{CacheHeader: cc.header(), Entries: entries}
	return cc.call(ctx, req, &req.CacheHeader, nil)
}

// PutIfAbsent stores value if key is absent and reports whether it did.
func (cc Cache) PutIfAbsent(ctx context.Context, key, value any) (bool, error) {
	return cc.kvBool(ctx, wire.OpCachePutIfAbsent, key, value)
}

// GetAndPut stores value and returns the previous value (nil if none).
func (cc Cache) GetAndPut(ctx context.Context, key, value any) (any, error) {
	return cc.kvValue(ctx, wire.OpCacheGetAndPut, key, value)
}

// Replace stores value if key exists and reports whether it did.
func (cc Cache) Replace(ctx context.Context, key, value any) (bool, error) {
	return cc.kvBool(ctx, wire.OpCacheReplace, key, value)
}

// ReplaceIfEquals stores value if key currently holds expected (server-side
// equality: same type and same value) and reports whether it did.
func (cc Cache) ReplaceIfEquals(ctx context.Context, key, expected, value any) (bool, error) {
	req := &wire.CacheReplaceIfEqualsRequest{CacheHeader: cc.header(), Key: key, Expected: expected, Value: value}
	var ok bool
	err := cc.call(ctx, req, &req.CacheHeader, func(p []byte) (err error) {
		ok, err = wire.DecodeBool(p)
		return err
	})
	return ok, err
}

// ContainsKey reports whether key exists.
func (cc Cache) ContainsKey(ctx context.Context, key any) (bool, error) {
	return cc.keyBool(ctx, wire.OpCacheContainsKey, key)
}

// Remove removes key and reports whether it existed.
func (cc Cache) Remove(ctx context.Context, key any) (bool, error) {
	return cc.keyBool(ctx, wire.OpCacheRemoveKey, key)
}

// GetAndRemove removes key and returns its previous value (nil if none).
func (cc Cache) GetAndRemove(ctx context.Context, key any) (any, error) {
	return cc.value(ctx, wire.OpCacheGetAndRemove, key)
}

// RemoveIfEquals removes key if it holds expected and reports whether it did.
func (cc Cache) RemoveIfEquals(ctx context.Context, key, expected any) (bool, error) {
	return cc.kvBool(ctx, wire.OpCacheRemoveIfEquals, key, expected)
}

// RemoveKeys removes the keys (inside the transaction, if any).
func (cc Cache) RemoveKeys(ctx context.Context, keys []any) error {
	if len(keys) == 0 {
		return nil
	}
	req := &wire.CacheKeysRequest{Code: wire.OpCacheRemoveKeys, CacheHeader: cc.header(), Keys: keys}
	return cc.call(ctx, req, &req.CacheHeader, nil)
}

// RemoveAll removes every entry of the cache, notifying listeners. It never
// runs inside a transaction, even on a WithTx handle (server behaviour).
func (cc Cache) RemoveAll(ctx context.Context) error {
	req := &wire.CacheRequest{Code: wire.OpCacheRemoveAll, CacheHeader: cc.header()}
	return cc.client.do(ctx, req, nil)
}

// Clear removes every entry without notifying listeners; never
// transactional.
func (cc Cache) Clear(ctx context.Context) error {
	req := &wire.CacheRequest{Code: wire.OpCacheClear, CacheHeader: cc.header()}
	return cc.client.do(ctx, req, nil)
}

// Size returns the number of entries (primary copies).
func (cc Cache) Size(ctx context.Context) (int64, error) {
	req := &wire.CacheSizeRequest{CacheHeader: cc.header()}
	var n int64
	err := cc.call(ctx, req, &req.CacheHeader, func(p []byte) (err error) {
		n, err = wire.DecodeI64(p)
		return err
	})
	return n, err
}
