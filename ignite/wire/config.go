package wire

import (
	"fmt"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

// Cache configuration property codes (reference 5.4).
const (
	PropName                     int16 = 0
	PropCacheMode                int16 = 1
	PropAtomicityMode            int16 = 2
	PropBackups                  int16 = 3
	PropWriteSynchronizationMode int16 = 4
	PropCopyOnRead               int16 = 5
	PropReadFromBackup           int16 = 6
	PropDataRegionName           int16 = 100
	PropOnheapCacheEnabled       int16 = 101
	PropQueryEntities            int16 = 200
	PropQueryParallelism         int16 = 201
	PropQueryDetailMetricsSize   int16 = 202
	PropSQLSchema                int16 = 203
	PropSQLIndexMaxInlineSize    int16 = 204
	PropSQLEscapeAll             int16 = 205
	PropMaxQueryIterators        int16 = 206
	PropRebalanceMode            int16 = 300
	PropRebalanceDelay           int16 = 301
	PropRebalanceTimeout         int16 = 302
	PropRebalanceBatchSize       int16 = 303
	PropRebalanceBatchesPrefetch int16 = 304
	PropRebalanceOrder           int16 = 305
	PropRebalanceThrottle        int16 = 306
	PropGroupName                int16 = 400
	PropKeyConfiguration         int16 = 401
	PropDefaultLockTimeout       int16 = 402
	PropMaxConcurrentAsyncOps    int16 = 403
	PropPartitionLossPolicy      int16 = 404
	PropEagerTTL                 int16 = 405
	PropStatisticsEnabled        int16 = 406
	PropExpiryPolicy             int16 = 407
	PropStoragePath              int16 = 408
	PropIndexPath                int16 = 409
	PropAffinityConfiguration    int16 = 410
)

// Values of PropCacheMode, PropAtomicityMode and PropWriteSynchronizationMode.
const (
	CacheModeReplicated  int32 = 1
	CacheModePartitioned int32 = 2

	AtomicityTransactional int32 = 0
	AtomicityAtomic        int32 = 1

	WriteSyncFullSync    int32 = 0
	WriteSyncFullAsync   int32 = 1
	WriteSyncPrimarySync int32 = 2
)

type propKind int

const (
	kindI32 propKind = iota + 1
	kindI64
	kindBool
	kindString
	kindQueryEntities
	kindKeyConfig
	kindExpiry
	kindStringArray
	kindAffinity
)

var propKinds = map[int16]propKind{
	PropName: kindString, PropCacheMode: kindI32, PropAtomicityMode: kindI32, PropBackups: kindI32,
	PropWriteSynchronizationMode: kindI32, PropCopyOnRead: kindBool, PropReadFromBackup: kindBool,
	PropDataRegionName: kindString, PropOnheapCacheEnabled: kindBool, PropQueryEntities: kindQueryEntities,
	PropQueryParallelism: kindI32, PropQueryDetailMetricsSize: kindI32, PropSQLSchema: kindString,
	PropSQLIndexMaxInlineSize: kindI32, PropSQLEscapeAll: kindBool, PropMaxQueryIterators: kindI32,
	PropRebalanceMode: kindI32, PropRebalanceDelay: kindI64, PropRebalanceTimeout: kindI64,
	PropRebalanceBatchSize: kindI32, PropRebalanceBatchesPrefetch: kindI64, PropRebalanceOrder: kindI32,
	PropRebalanceThrottle: kindI64, PropGroupName: kindString, PropKeyConfiguration: kindKeyConfig,
	PropDefaultLockTimeout: kindI64, PropMaxConcurrentAsyncOps: kindI32, PropPartitionLossPolicy: kindI32,
	PropEagerTTL: kindBool, PropStatisticsEnabled: kindBool, PropExpiryPolicy: kindExpiry,
	PropStoragePath: kindStringArray, PropIndexPath: kindString, PropAffinityConfiguration: kindAffinity,
}

// KeyConfiguration is one entry of PropKeyConfiguration.
type KeyConfiguration struct {
	TypeName, AffinityKeyField string
}

// AffinityConfiguration is the value of PropAffinityConfiguration (2.19 only).
type AffinityConfiguration struct {
	Partitions        int32
	ExcludeNeighbours bool
}

// CacheProperty is one configuration property. Value's Go type depends on the
// code: int32, int64, bool; string or nil for string properties;
// []KeyConfiguration; *ExpiryPolicy (nil = no policy); binary.Array of strings
// or nil (PropStoragePath); AffinityConfiguration; and for PropQueryEntities
// only an empty list ([]struct{}(nil) is written as count 0 — query entities
// are not modelled).
type CacheProperty struct {
	Code  int16
	Value any
}

// CacheConfiguration is the configuration record of cache-creation requests:
// properties in the order they are sent.
type CacheConfiguration struct {
	Properties []CacheProperty
}

// Get returns the value of property code, if present.
func (c *CacheConfiguration) Get(code int16) (any, bool) {
	for _, p := range c.Properties {
		if p.Code == code {
			return p.Value, true
		}
	}
	return nil, false
}

// Int32 returns an i32 property, or def when absent.
func (c *CacheConfiguration) Int32(code int16, def int32) int32 {
	if v, ok := c.Get(code); ok {
		if i, ok := v.(int32); ok {
			return i
		}
	}
	return def
}

// Name returns the NAME property, or "" when absent or null.
func (c *CacheConfiguration) Name() string {
	v, _ := c.Get(PropName)
	s, _ := v.(string)
	return s
}

func (c *CacheConfiguration) encode(w *ib.Writer) error {
	lenAt := w.Len()
	w.I32(0)
	w.I16(int16(len(c.Properties)))
	for _, p := range c.Properties {
		if err := encodeProp(w, p); err != nil {
			return err
		}
	}
	w.PutI32At(lenAt, int32(w.Len()-lenAt-4))
	return nil
}

func encodeProp(w *ib.Writer, p CacheProperty) error {
	kind, ok := propKinds[p.Code]
	if !ok {
		// The server would skip the code without its value and misparse.
		return fmt.Errorf("unknown cache property %d", p.Code)
	}
	bad := func() error { return fmt.Errorf("cache property %d: unexpected value %T", p.Code, p.Value) }
	w.I16(p.Code)
	switch kind {
	case kindI32:
		v, ok := p.Value.(int32)
		if !ok {
			return bad()
		}
		w.I32(v)
	case kindI64:
		v, ok := p.Value.(int64)
		if !ok {
			return bad()
		}
		w.I64(v)
	case kindBool:
		v, ok := p.Value.(bool)
		if !ok {
			return bad()
		}
		w.Bool(v)
	case kindString:
		switch v := p.Value.(type) {
		case nil:
			w.Null()
		case string:
			w.String(v)
		default:
			return bad()
		}
	case kindQueryEntities:
		if p.Value != nil {
			if v, ok := p.Value.([]struct{}); !ok || len(v) != 0 {
				return fmt.Errorf("cache property %d: query entities are not supported", p.Code)
			}
		}
		w.I32(0)
	case kindKeyConfig:
		v, ok := p.Value.([]KeyConfiguration)
		if !ok && p.Value != nil {
			return bad()
		}
		w.I32(int32(len(v)))
		for _, k := range v {
			w.String(k.TypeName)
			w.String(k.AffinityKeyField)
		}
	case kindExpiry:
		v, ok := p.Value.(*ExpiryPolicy)
		if !ok && p.Value != nil {
			return bad()
		}
		w.Bool(v != nil)
		if v != nil {
			w.I64(v.Create)
			w.I64(v.Update)
			w.I64(v.Access)
		}
	case kindStringArray:
		switch v := p.Value.(type) {
		case nil:
			w.Null()
		case ib.Array:
			if v.Code != ib.TypeStringArray {
				return bad()
			}
			if err := w.Object(v); err != nil {
				return err
			}
		default:
			return bad()
		}
	case kindAffinity:
		v, ok := p.Value.(AffinityConfiguration)
		if !ok {
			return bad()
		}
		w.I32(v.Partitions)
		w.Bool(v.ExcludeNeighbours)
	}
	return nil
}

func (c *CacheConfiguration) decode(r *ib.Reader) {
	length := r.I32()
	if r.Err() != nil {
		return
	}
	if length < 2 || int(length) > r.Remaining() {
		r.Fail("cache configuration length %d with %d bytes left", length, r.Remaining())
		return
	}
	start := r.Pos()
	n := int(r.I16())
	if n < 0 {
		r.Fail("negative property count %d", n)
		return
	}
	c.Properties = nil
	for i := 0; i < n && r.Err() == nil; i++ {
		c.Properties = append(c.Properties, decodeProp(r))
	}
	if r.Err() == nil && r.Pos()-start != int(length) {
		// The server skips this field; ignitetest is stricter.
		r.Fail("cache configuration length %d, properties took %d", length, r.Pos()-start)
	}
}

func decodeProp(r *ib.Reader) CacheProperty {
	p := CacheProperty{Code: r.I16()}
	if r.Err() != nil {
		return p
	}
	kind, ok := propKinds[p.Code]
	if !ok {
		r.Fail("unknown cache property %d", p.Code)
		return p
	}
	switch kind {
	case kindI32:
		v := r.I32()
		p.Value = v
		if r.Err() == nil {
			switch p.Code {
			case PropCacheMode:
				// 2.19 fails to parse an unknown mode (LOCAL included) and
				// closes the connection.
				if v != CacheModeReplicated && v != CacheModePartitioned {
					r.Fail("cache mode %d", v)
				}
			case PropAtomicityMode:
				if v != AtomicityTransactional && v != AtomicityAtomic {
					r.Fail("atomicity mode %d", v)
				}
			case PropWriteSynchronizationMode:
				if v < WriteSyncFullSync || v > WriteSyncPrimarySync {
					r.Fail("write synchronization mode %d", v)
				}
			}
		}
	case kindI64:
		p.Value = r.I64()
	case kindBool:
		p.Value = r.Bool()
	case kindString:
		if s := r.NullableString(); s != nil {
			p.Value = *s
		}
	case kindQueryEntities:
		if n := r.I32(); r.Err() == nil && n != 0 {
			r.Fail("query entities are not supported (%d)", n)
		}
	case kindKeyConfig:
		n := r.Count(2)
		v := []KeyConfiguration{}
		for i := 0; i < n; i++ {
			v = append(v, KeyConfiguration{TypeName: r.String(), AffinityKeyField: r.String()})
		}
		p.Value = v
	case kindExpiry:
		if r.Bool() {
			p.Value = &ExpiryPolicy{r.I64(), r.I64(), r.I64()}
		} else {
			p.Value = (*ExpiryPolicy)(nil)
		}
	case kindStringArray:
		if r.PeekNull() {
			r.U8()
		} else {
			v := r.Object()
			a, ok := v.(ib.Array)
			if r.Err() == nil && (!ok || a.Code != ib.TypeStringArray) {
				r.Fail("storage path is %T, not a string array", v)
			}
			p.Value = a
		}
	case kindAffinity:
		p.Value = AffinityConfiguration{Partitions: r.I32(), ExcludeNeighbours: r.Bool()}
	}
	return p
}
