package wire

import (
	"errors"
	"fmt"
	"math"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

// Request is one request payload.
type Request interface {
	// Op returns the operation code.
	Op() Op
	// EncodePayload appends the payload (what follows the request id).
	EncodePayload(w *ib.Writer, p Proto) error
}

// EncodeRequest returns the complete frame of req with request id reqID.
func EncodeRequest(reqID int64, req Request, p Proto) ([]byte, error) {
	return AppendRequest(nil, reqID, req, p)
}

// AppendRequest is EncodeRequest writing into buf's spare capacity (buf's
// contents are dropped), so that a connection can reuse one buffer for
// every frame it sends.
func AppendRequest(buf []byte, reqID int64, req Request, p Proto) ([]byte, error) {
	w := beginFrameIn(buf[:0])
	w.I16(int16(req.Op()))
	w.I64(reqID)
	if err := req.EncodePayload(w, p); err != nil {
		return nil, fmt.Errorf("ignite/wire: encode %s: %w", req.Op(), err)
	}
	return EndFrame(w), nil
}

// ErrUnknownOp is returned by DecodeRequest for an op code it does not model.
// A real server answers such a request with StatusInvalidOpCode when it does
// not know the op either.
var ErrUnknownOp = errors.New("ignite/wire: unknown op code")

// ExpiryPolicy holds the three expiry durations in milliseconds: -2 leaves the
// current one unchanged, -1 means eternal, 0 expires at once.
type ExpiryPolicy struct {
	Create, Update, Access int64
}

// CacheHeader is the common prefix of cache data requests (reference 5.2).
type CacheHeader struct {
	CacheID int32
	// Flags: CacheFlagKeepBinary, CacheFlagTransactional (TxID follows),
	// CacheFlagExpiryPolicy (Expiry follows).
	Flags  int8
	Expiry ExpiryPolicy
	TxID   int32
}

// InTx reports whether the request carries a transaction id.
func (h *CacheHeader) InTx() bool { return h.Flags&CacheFlagTransactional != 0 }

func (h *CacheHeader) encode(w *ib.Writer, readsTx bool) error {
	w.I32(h.CacheID)
	w.I8(h.Flags)
	if h.Flags&CacheFlagExpiryPolicy != 0 {
		w.I64(h.Expiry.Create)
		w.I64(h.Expiry.Update)
		w.I64(h.Expiry.Access)
	}
	if h.Flags&CacheFlagTransactional != 0 {
		if !readsTx {
			// The server would not read the id and misparse the rest.
			return errors.New("transactional flag on an op that takes no transaction id")
		}
		w.I32(h.TxID)
	}
	return nil
}

func (h *CacheHeader) decode(r *ib.Reader, readsTx bool) {
	h.CacheID = r.I32()
	h.Flags = r.I8()
	if h.Flags&CacheFlagExpiryPolicy != 0 {
		h.Expiry = ExpiryPolicy{r.I64(), r.I64(), r.I64()}
	}
	if readsTx && h.Flags&CacheFlagTransactional != 0 {
		h.TxID = r.I32()
	}
}

// KV is a key and a value.
type KV struct {
	Key, Value any
}

func writeObj(w *ib.Writer, v any) error { return w.Object(v) }

// CacheKeyRequest is a cache op taking one key: CACHE_GET, GET_AND_REMOVE,
// CONTAINS_KEY, CLEAR_KEY, REMOVE_KEY.
type CacheKeyRequest struct {
	Code Op
	CacheHeader
	Key any
}

func (q *CacheKeyRequest) Op() Op { return q.Code }
func (q *CacheKeyRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	return writeObj(w, q.Key)
}

// CacheKeyValueRequest is a cache op taking a key and a value: PUT,
// PUT_IF_ABSENT, GET_AND_PUT, GET_AND_REPLACE, GET_AND_PUT_IF_ABSENT, REPLACE,
// REMOVE_IF_EQUALS (Value is the expected value).
type CacheKeyValueRequest struct {
	Code Op
	CacheHeader
	Key, Value any
}

func (q *CacheKeyValueRequest) Op() Op { return q.Code }
func (q *CacheKeyValueRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	if err := writeObj(w, q.Key); err != nil {
		return err
	}
	return writeObj(w, q.Value)
}

// CacheReplaceIfEqualsRequest is CACHE_REPLACE_IF_EQUALS.
type CacheReplaceIfEqualsRequest struct {
	CacheHeader
	Key, Expected, Value any
}

func (q *CacheReplaceIfEqualsRequest) Op() Op { return OpCacheReplaceIfEquals }
func (q *CacheReplaceIfEqualsRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	for _, v := range []any{q.Key, q.Expected, q.Value} {
		if err := writeObj(w, v); err != nil {
			return err
		}
	}
	return nil
}

// CacheKeysRequest is a cache op taking a key list: GET_ALL, CONTAINS_KEYS,
// CLEAR_KEYS, REMOVE_KEYS.
type CacheKeysRequest struct {
	Code Op
	CacheHeader
	Keys []any
}

func (q *CacheKeysRequest) Op() Op { return q.Code }
func (q *CacheKeysRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	w.I32(int32(len(q.Keys)))
	for _, k := range q.Keys {
		if err := writeObj(w, k); err != nil {
			return err
		}
	}
	return nil
}

// CachePutAllRequest is CACHE_PUT_ALL.
type CachePutAllRequest struct {
	CacheHeader
	Entries []KV
}

func (q *CachePutAllRequest) Op() Op { return OpCachePutAll }
func (q *CachePutAllRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	w.I32(int32(len(q.Entries)))
	for _, e := range q.Entries {
		if err := writeObj(w, e.Key); err != nil {
			return err
		}
		if err := writeObj(w, e.Value); err != nil {
			return err
		}
	}
	return nil
}

// BytesKV is a cache entry whose key and value are both byte[].
type BytesKV struct {
	Key, Value []byte
}

// CachePutAllBytesRequest is CACHE_PUT_ALL of byte[] keys and values, the
// only kind ignetcd's tables hold. It encodes exactly as CachePutAllRequest
// with those entries, without boxing every key and value in an interface
// (two allocations per entry on the write path).
type CachePutAllBytesRequest struct {
	CacheHeader
	Entries []BytesKV
}

func (q *CachePutAllBytesRequest) Op() Op { return OpCachePutAll }
func (q *CachePutAllBytesRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	w.I32(int32(len(q.Entries)))
	for _, e := range q.Entries {
		if len(e.Key) > math.MaxInt32 || len(e.Value) > math.MaxInt32 {
			return fmt.Errorf("ignite/wire: a byte[] of %d bytes does not fit an i32 length", max(len(e.Key), len(e.Value)))
		}
		w.ByteArray(e.Key)
		w.ByteArray(e.Value)
	}
	return nil
}

// CacheRequest is a cache op with no arguments: CLEAR, REMOVE_ALL (both run
// outside any transaction even when they carry a tx id).
type CacheRequest struct {
	Code Op
	CacheHeader
}

func (q *CacheRequest) Op() Op { return q.Code }
func (q *CacheRequest) EncodePayload(w *ib.Writer, p Proto) error {
	return q.CacheHeader.encode(w, true)
}

// Peek modes of CACHE_GET_SIZE.
const (
	PeekAll     int8 = 0
	PeekNear    int8 = 1
	PeekPrimary int8 = 2
	PeekBackup  int8 = 3
	PeekOnHeap  int8 = 4
	PeekOffHeap int8 = 5
)

// CacheSizeRequest is CACHE_GET_SIZE; no peek modes counts primary copies.
type CacheSizeRequest struct {
	CacheHeader
	PeekModes []int8
}

func (q *CacheSizeRequest) Op() Op { return OpCacheGetSize }
func (q *CacheSizeRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	w.I32(int32(len(q.PeekModes)))
	for _, m := range q.PeekModes {
		w.I8(m)
	}
	return nil
}

// CacheNameRequest is CACHE_CREATE_WITH_NAME or CACHE_GET_OR_CREATE_WITH_NAME.
type CacheNameRequest struct {
	Code Op
	Name string
}

func (q *CacheNameRequest) Op() Op { return q.Code }
func (q *CacheNameRequest) EncodePayload(w *ib.Writer, p Proto) error {
	w.String(q.Name)
	return nil
}

// CacheConfigRequest is CACHE_CREATE_WITH_CONFIGURATION or
// CACHE_GET_OR_CREATE_WITH_CONFIGURATION. SQL is sent only when
// FeatureSQLCacheCreation was negotiated.
type CacheConfigRequest struct {
	Code   Op
	SQL    bool
	Config CacheConfiguration
}

func (q *CacheConfigRequest) Op() Op { return q.Code }
func (q *CacheConfigRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if p.Has(FeatureSQLCacheCreation) {
		w.Bool(q.SQL)
	}
	return q.Config.encode(w)
}

// CacheIDRequest is CACHE_DESTROY.
type CacheIDRequest struct {
	Code    Op
	CacheID int32
}

func (q *CacheIDRequest) Op() Op { return q.Code }
func (q *CacheIDRequest) EncodePayload(w *ib.Writer, p Proto) error {
	w.I32(q.CacheID)
	return nil
}

// EmptyRequest is an op without payload: CACHE_GET_NAMES, HEARTBEAT,
// GET_IDLE_TIMEOUT, BINARY_CONFIGURATION_GET.
type EmptyRequest struct {
	Code Op
}

func (q *EmptyRequest) Op() Op                                    { return q.Code }
func (q *EmptyRequest) EncodePayload(w *ib.Writer, p Proto) error { return nil }

// ResourceRequest is an op taking a resource id: RESOURCE_CLOSE,
// QUERY_SCAN_CURSOR_GET_PAGE.
type ResourceRequest struct {
	Code       Op
	ResourceID int64
}

func (q *ResourceRequest) Op() Op { return q.Code }
func (q *ResourceRequest) EncodePayload(w *ib.Writer, p Proto) error {
	w.I64(q.ResourceID)
	return nil
}

// TxStartRequest is TX_START (reference 6.1).
type TxStartRequest struct {
	Concurrency int8
	Isolation   int8
	TimeoutMs   int64
	Label       *string
}

func (q *TxStartRequest) Op() Op { return OpTxStart }
func (q *TxStartRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if q.Concurrency < TxOptimistic || q.Concurrency > TxPessimistic {
		return fmt.Errorf("invalid tx concurrency %d", q.Concurrency)
	}
	if q.Isolation < TxReadCommitted || q.Isolation > TxSerializable {
		return fmt.Errorf("invalid tx isolation %d", q.Isolation)
	}
	w.I8(q.Concurrency)
	w.I8(q.Isolation)
	w.I64(q.TimeoutMs)
	w.NullableString(q.Label)
	return nil
}

// TxEndRequest is TX_END.
type TxEndRequest struct {
	TxID   int32
	Commit bool
}

func (q *TxEndRequest) Op() Op { return OpTxEnd }
func (q *TxEndRequest) EncodePayload(w *ib.Writer, p Proto) error {
	w.I32(q.TxID)
	w.Bool(q.Commit)
	return nil
}

// Filter platforms of scan and continuous-query filters.
const (
	PlatformJava   int8 = 1
	PlatformDotNet int8 = 2
)

// ScanRequest is QUERY_SCAN (reference 7.1).
type ScanRequest struct {
	CacheHeader
	Filter         any  // nil: no filter
	FilterPlatform int8 // sent only with a filter
	PageSize       int32
	Partition      int32 // negative: all partitions
	Local          bool
}

func (q *ScanRequest) Op() Op { return OpQueryScan }
func (q *ScanRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if q.PageSize <= 0 {
		return fmt.Errorf("scan page size %d must be positive", q.PageSize)
	}
	if err := q.CacheHeader.encode(w, true); err != nil {
		return err
	}
	if err := writeObj(w, q.Filter); err != nil {
		return err
	}
	if !isNull(q.Filter) {
		w.I8(q.FilterPlatform)
	}
	w.I32(q.PageSize)
	w.I32(q.Partition)
	w.Bool(q.Local)
	return nil
}

func isNull(v any) bool {
	if v == nil {
		return true
	}
	raw, ok := v.(ib.Raw)
	return ok && len(raw) == 1 && raw[0] == ib.TypeNull
}

// ContinuousQueryRequest is QUERY_CONTINUOUS (reference 8.2). Its cache
// header never carries a tx id.
type ContinuousQueryRequest struct {
	CacheHeader
	PageSize       int32
	TimeIntervalMs int64
	IncludeExpired bool
	Filter         any
	FilterPlatform int8
}

func (q *ContinuousQueryRequest) Op() Op { return OpQueryContinuous }
func (q *ContinuousQueryRequest) EncodePayload(w *ib.Writer, p Proto) error {
	// These would make the server drop the connection while parsing.
	if q.PageSize <= 0 {
		return fmt.Errorf("continuous query page size %d must be positive", q.PageSize)
	}
	if q.TimeIntervalMs < 0 {
		return fmt.Errorf("continuous query time interval %d must not be negative", q.TimeIntervalMs)
	}
	if err := q.CacheHeader.encode(w, false); err != nil {
		return err
	}
	w.I32(q.PageSize)
	w.I64(q.TimeIntervalMs)
	w.Bool(q.IncludeExpired)
	if err := writeObj(w, q.Filter); err != nil {
		return err
	}
	if !isNull(q.Filter) {
		w.I8(q.FilterPlatform)
	}
	return nil
}

// NodeEndpointsRequest is CLUSTER_GROUP_GET_NODE_ENDPOINTS (reference 5.5).
type NodeEndpointsRequest struct {
	StartTopologyVersion, EndTopologyVersion int64
}

func (q *NodeEndpointsRequest) Op() Op { return OpClusterGroupGetEndpoints }
func (q *NodeEndpointsRequest) EncodePayload(w *ib.Writer, p Proto) error {
	w.I64(q.StartTopologyVersion)
	w.I64(q.EndTopologyVersion)
	return nil
}

// CachePartitionsRequest is CACHE_PARTITIONS (reference 5.5).
type CachePartitionsRequest struct {
	CustomMappings bool    // sent with FeatureAllAffinityMappings
	DataCenter     *string // sent with FeatureDCAware
	CacheIDs       []int32
}

func (q *CachePartitionsRequest) Op() Op { return OpCachePartitions }
func (q *CachePartitionsRequest) EncodePayload(w *ib.Writer, p Proto) error {
	if p.Has(FeatureAllAffinityMappings) {
		w.Bool(q.CustomMappings)
	}
	if p.Has(FeatureDCAware) {
		w.NullableString(q.DataCenter)
	}
	w.I32(int32(len(q.CacheIDs)))
	for _, id := range q.CacheIDs {
		w.I32(id)
	}
	return nil
}

// DecodeRequest parses a request payload the way a 2.19 server does. Keys,
// values and filters come back as binary.Raw. An error wrapping ErrUnknownOp
// means the op is not modelled (the connection survives: answer
// StatusInvalidOpCode); any other error means the server would have failed to
// parse the request and closed the connection.
func DecodeRequest(op Op, payload []byte, p Proto) (Request, error) {
	r := ib.NewReader(payload)
	var req Request
	var hdr CacheHeader
	switch op {
	case OpCacheGet, OpCacheGetAndRemove, OpCacheContainsKey, OpCacheClearKey, OpCacheRemoveKey:
		hdr.decode(r, true)
		req = &CacheKeyRequest{Code: op, CacheHeader: hdr, Key: r.Raw()}
	case OpCachePut, OpCachePutIfAbsent, OpCacheGetAndPut, OpCacheGetAndReplace, OpCacheGetAndPutIfAbsent,
		OpCacheReplace, OpCacheRemoveIfEquals:
		hdr.decode(r, true)
		q := &CacheKeyValueRequest{Code: op, CacheHeader: hdr}
		q.Key = r.Raw()
		q.Value = r.Raw()
		req = q
	case OpCacheReplaceIfEquals:
		hdr.decode(r, true)
		q := &CacheReplaceIfEqualsRequest{CacheHeader: hdr}
		q.Key = r.Raw()
		q.Expected = r.Raw()
		q.Value = r.Raw()
		req = q
	case OpCacheGetAll, OpCacheContainsKeys, OpCacheClearKeys, OpCacheRemoveKeys:
		hdr.decode(r, true)
		n := r.Count(1)
		q := &CacheKeysRequest{Code: op, CacheHeader: hdr, Keys: make([]any, n)}
		for i := range q.Keys {
			q.Keys[i] = r.Raw()
		}
		req = q
	case OpCachePutAll:
		hdr.decode(r, true)
		n := r.Count(2)
		q := &CachePutAllRequest{CacheHeader: hdr, Entries: make([]KV, n)}
		for i := range q.Entries {
			q.Entries[i].Key = r.Raw()
			q.Entries[i].Value = r.Raw()
		}
		req = q
	case OpCacheClear, OpCacheRemoveAll:
		hdr.decode(r, true)
		req = &CacheRequest{Code: op, CacheHeader: hdr}
	case OpCacheGetSize:
		hdr.decode(r, true)
		n := r.Count(1)
		q := &CacheSizeRequest{CacheHeader: hdr}
		for i := 0; i < n; i++ {
			m := r.I8()
			if r.Err() == nil && (m < PeekAll || m > PeekOffHeap) {
				r.Fail("peek mode %d", m)
			}
			q.PeekModes = append(q.PeekModes, m)
		}
		req = q
	case OpCacheCreateWithName, OpCacheGetOrCreateWithName:
		req = &CacheNameRequest{Code: op, Name: r.String()}
	case OpCacheCreateWithConfig, OpCacheGetOrCreateWithCfg:
		q := &CacheConfigRequest{Code: op}
		if p.Has(FeatureSQLCacheCreation) {
			q.SQL = r.Bool()
		}
		q.Config.decode(r)
		req = q
	case OpCacheDestroy:
		req = &CacheIDRequest{Code: op, CacheID: r.I32()}
	case OpCacheGetNames, OpHeartbeat, OpGetIdleTimeout, OpBinaryConfigurationGet:
		req = &EmptyRequest{Code: op}
	case OpResourceClose, OpQueryScanCursorGetPage:
		req = &ResourceRequest{Code: op, ResourceID: r.I64()}
	case OpTxStart:
		q := &TxStartRequest{Concurrency: r.I8(), Isolation: r.I8(), TimeoutMs: r.I64(), Label: r.NullableString()}
		req = q
	case OpTxEnd:
		req = &TxEndRequest{TxID: r.I32(), Commit: r.Bool()}
	case OpQueryScan:
		hdr.decode(r, true)
		q := &ScanRequest{CacheHeader: hdr}
		q.Filter = r.Raw()
		if r.Err() == nil && !isNull(q.Filter) {
			q.FilterPlatform = r.I8()
		} else if r.Err() == nil {
			q.Filter = nil
		}
		q.PageSize = r.I32()
		q.Partition = r.I32()
		q.Local = r.Bool()
		req = q
	case OpQueryContinuous:
		hdr.decode(r, false)
		q := &ContinuousQueryRequest{CacheHeader: hdr}
		q.PageSize = r.I32()
		q.TimeIntervalMs = r.I64()
		q.IncludeExpired = r.Bool()
		if r.Err() == nil && q.PageSize <= 0 {
			r.Fail("continuous query page size %d", q.PageSize)
		}
		if r.Err() == nil && q.TimeIntervalMs < 0 {
			r.Fail("continuous query time interval %d", q.TimeIntervalMs)
		}
		q.Filter = r.Raw()
		if r.Err() == nil && !isNull(q.Filter) {
			q.FilterPlatform = r.I8()
		} else if r.Err() == nil {
			q.Filter = nil
		}
		req = q
	case OpClusterGroupGetEndpoints:
		req = &NodeEndpointsRequest{StartTopologyVersion: r.I64(), EndTopologyVersion: r.I64()}
	case OpCachePartitions:
		q := &CachePartitionsRequest{}
		if p.Has(FeatureAllAffinityMappings) {
			q.CustomMappings = r.Bool()
		}
		if p.Has(FeatureDCAware) {
			q.DataCenter = r.NullableString()
		}
		n := r.Count(4)
		for i := 0; i < n; i++ {
			q.CacheIDs = append(q.CacheIDs, r.I32())
		}
		req = q
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownOp, int16(op))
	}
	if err := r.End(); err != nil {
		return nil, fmt.Errorf("ignite/wire: decode %s: %w", op, err)
	}
	return req, nil
}
