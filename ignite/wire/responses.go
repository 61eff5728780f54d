package wire

import (
	"fmt"

	ib "github.com/ignetcd/ignetcd/ignite/binary"
)

// Response payloads. Decoders return Go values (see ignite/binary) and fail
// on truncated input or trailing bytes; encoders accept Go values or
// binary.Raw.

func decodeErr(what string, err error) error {
	return fmt.Errorf("ignite/wire: decode %s: %w", what, err)
}

// DecodeValue decodes a payload holding one typed value (CACHE_GET and the
// GET_AND_* ops).
func DecodeValue(payload []byte) (any, error) {
	r := ib.NewReader(payload)
	v := r.Object()
	if err := r.End(); err != nil {
		return nil, decodeErr("value", err)
	}
	return v, nil
}

// DecodeBool decodes a payload holding one raw bool.
func DecodeBool(payload []byte) (bool, error) {
	r := ib.NewReader(payload)
	v := r.Bool()
	if err := r.End(); err != nil {
		return false, decodeErr("bool", err)
	}
	return v, nil
}

// DecodeI32 decodes a payload holding one raw i32 (TX_START).
func DecodeI32(payload []byte) (int32, error) {
	r := ib.NewReader(payload)
	v := r.I32()
	if err := r.End(); err != nil {
		return 0, decodeErr("i32", err)
	}
	return v, nil
}

// DecodeI64 decodes a payload holding one raw i64 (CACHE_GET_SIZE,
// QUERY_CONTINUOUS, GET_IDLE_TIMEOUT).
func DecodeI64(payload []byte) (int64, error) {
	r := ib.NewReader(payload)
	v := r.I64()
	if err := r.End(); err != nil {
		return 0, decodeErr("i64", err)
	}
	return v, nil
}

// DecodeEmpty checks that a payload is empty.
func DecodeEmpty(payload []byte) error {
	if len(payload) != 0 {
		return fmt.Errorf("ignite/wire: %d unexpected payload bytes: %w", len(payload), ib.ErrMalformed)
	}
	return nil
}

// EncodeValue, EncodeBool, EncodeI32 and EncodeI64 build the payloads above.
func EncodeValue(v any) ([]byte, error) { return ib.Encode(v) }
func EncodeBool(v bool) []byte {
	var w ib.Writer
	w.Bool(v)
	return w.Bytes()
}
func EncodeI32(v int32) []byte {
	var w ib.Writer
	w.I32(v)
	return w.Bytes()
}
func EncodeI64(v int64) []byte {
	var w ib.Writer
	w.I64(v)
	return w.Bytes()
}

func readEntries(r *ib.Reader) []KV {
	n := r.Count(2)
	out := make([]KV, n)
	for i := range out {
		out[i].Key = r.Object()
		out[i].Value = r.Object()
	}
	return out
}

func writeEntries(w *ib.Writer, entries []KV) error {
	w.I32(int32(len(entries)))
	for _, e := range entries {
		if err := w.Object(e.Key); err != nil {
			return err
		}
		if err := w.Object(e.Value); err != nil {
			return err
		}
	}
	return nil
}

// DecodeEntries decodes the CACHE_GET_ALL payload.
func DecodeEntries(payload []byte) ([]KV, error) {
	r := ib.NewReader(payload)
	out := readEntries(r)
	if err := r.End(); err != nil {
		return nil, decodeErr("entries", err)
	}
	return out, nil
}

// EncodeEntries builds the CACHE_GET_ALL payload.
func EncodeEntries(entries []KV) ([]byte, error) {
	var w ib.Writer
	if err := writeEntries(&w, entries); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// DecodeStrings decodes a count followed by typed strings (CACHE_GET_NAMES);
// null strings become "".
func DecodeStrings(payload []byte) ([]string, error) {
	r := ib.NewReader(payload)
	n := r.Count(1)
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		s := r.NullableString()
		if s != nil {
			out = append(out, *s)
		} else {
			out = append(out, "")
		}
	}
	if err := r.End(); err != nil {
		return nil, decodeErr("strings", err)
	}
	return out, nil
}

// EncodeStrings builds a CACHE_GET_NAMES payload.
func EncodeStrings(s []string) []byte {
	var w ib.Writer
	w.I32(int32(len(s)))
	for _, x := range s {
		w.String(x)
	}
	return w.Bytes()
}

// ScanPage is a page of a scan cursor (reference 7.1, 7.2). CursorID is sent
// only in the response to QUERY_SCAN.
type ScanPage struct {
	CursorID int64
	Entries  []KV
	HasMore  bool
}

// DecodeScanPage decodes a QUERY_SCAN (first true) or
// QUERY_SCAN_CURSOR_GET_PAGE payload.
func DecodeScanPage(payload []byte, first bool) (ScanPage, error) {
	var p ScanPage
	r := ib.NewReader(payload)
	if first {
		p.CursorID = r.I64()
	}
	p.Entries = readEntries(r)
	p.HasMore = r.Bool()
	if err := r.End(); err != nil {
		return ScanPage{}, decodeErr("scan page", err)
	}
	return p, nil
}

// Encode builds the payload of a first (QUERY_SCAN) or later page.
func (p *ScanPage) Encode(first bool) ([]byte, error) {
	var w ib.Writer
	if first {
		w.I64(p.CursorID)
	}
	if err := writeEntries(&w, p.Entries); err != nil {
		return nil, err
	}
	w.Bool(p.HasMore)
	return w.Bytes(), nil
}

// Event is one continuous-query event (reference 8.3). Decide what happened
// by Type: on 2.11 servers a REMOVED event repeats the old value as New.
type Event struct {
	Key, Old, New any
	Type          int8
}

// DecodeEvents decodes the payload of a QUERY_CONTINUOUS_EVENT_NOTIFICATION.
func DecodeEvents(payload []byte) ([]Event, error) {
	r := ib.NewReader(payload)
	n := r.Count(4)
	out := make([]Event, n)
	for i := range out {
		out[i].Key = r.Object()
		out[i].Old = r.Object()
		out[i].New = r.Object()
		out[i].Type = r.I8()
		if r.Err() == nil && (out[i].Type < EventCreated || out[i].Type > EventExpired) {
			r.Fail("event type %d", out[i].Type)
		}
	}
	if err := r.End(); err != nil {
		return nil, decodeErr("continuous query events", err)
	}
	return out, nil
}

// EncodeEvents builds a QUERY_CONTINUOUS_EVENT_NOTIFICATION payload.
func EncodeEvents(events []Event) ([]byte, error) {
	var w ib.Writer
	w.I32(int32(len(events)))
	for _, e := range events {
		for _, v := range []any{e.Key, e.Old, e.New} {
			if err := w.Object(v); err != nil {
				return nil, err
			}
		}
		w.I8(e.Type)
	}
	return w.Bytes(), nil
}

// BinaryConfiguration is the BINARY_CONFIGURATION_GET payload.
type BinaryConfiguration struct {
	CompactFooter  bool
	NameMapperMode int8
}

// DecodeBinaryConfiguration decodes a BINARY_CONFIGURATION_GET payload.
func DecodeBinaryConfiguration(payload []byte) (BinaryConfiguration, error) {
	r := ib.NewReader(payload)
	c := BinaryConfiguration{CompactFooter: r.Bool(), NameMapperMode: r.I8()}
	if err := r.End(); err != nil {
		return BinaryConfiguration{}, decodeErr("binary configuration", err)
	}
	return c, nil
}

// Encode builds the payload.
func (c *BinaryConfiguration) Encode() []byte {
	var w ib.Writer
	w.Bool(c.CompactFooter)
	w.I8(c.NameMapperMode)
	return w.Bytes()
}

// NodeEndpoint is one added node of a NodeEndpoints reply.
type NodeEndpoint struct {
	NodeID    ib.UUID
	Port      int32
	Addresses []string
}

// NodeEndpoints is the CLUSTER_GROUP_GET_NODE_ENDPOINTS payload (reference 5.5).
type NodeEndpoints struct {
	TopologyVersion int64
	Added           []NodeEndpoint
	Removed         []ib.UUID
}

// DecodeNodeEndpoints decodes the payload.
func DecodeNodeEndpoints(payload []byte) (NodeEndpoints, error) {
	var e NodeEndpoints
	r := ib.NewReader(payload)
	e.TopologyVersion = r.I64()
	n := r.Count(24)
	for i := 0; i < n; i++ {
		ne := NodeEndpoint{NodeID: r.RawUUID(), Port: r.I32()}
		m := r.Count(1)
		for j := 0; j < m; j++ {
			ne.Addresses = append(ne.Addresses, r.String())
		}
		e.Added = append(e.Added, ne)
	}
	n = r.Count(16)
	for i := 0; i < n; i++ {
		e.Removed = append(e.Removed, r.RawUUID())
	}
	if err := r.End(); err != nil {
		return NodeEndpoints{}, decodeErr("node endpoints", err)
	}
	return e, nil
}

// Encode builds the payload.
func (e *NodeEndpoints) Encode() []byte {
	var w ib.Writer
	w.I64(e.TopologyVersion)
	w.I32(int32(len(e.Added)))
	for _, n := range e.Added {
		w.RawUUID(n.NodeID)
		w.I32(n.Port)
		w.I32(int32(len(n.Addresses)))
		for _, a := range n.Addresses {
			w.String(a)
		}
	}
	w.I32(int32(len(e.Removed)))
	for _, id := range e.Removed {
		w.RawUUID(id)
	}
	return w.Bytes()
}

// NodePartitions lists the primary partitions of one node.
type NodePartitions struct {
	NodeID     ib.UUID
	Partitions []int32
}

// PartitionsCache is one cache of a partition-awareness group.
type PartitionsCache struct {
	CacheID int32
	// KeyConfigs holds (key type id, affinity key field id) pairs; sent only
	// for applicable groups.
	KeyConfigs [][2]int32
}

// PartitionsGroup is one group of a CACHE_PARTITIONS reply.
type PartitionsGroup struct {
	Applicable bool
	Caches     []PartitionsCache
	Nodes      []NodePartitions // applicable groups only
	DCNodes    []NodePartitions // applicable groups with FeatureDCAware
	// DefaultAffinity is sent with FeatureAllAffinityMappings.
	DefaultAffinity bool
}

// CachePartitions is the CACHE_PARTITIONS payload (reference 5.5).
type CachePartitions struct {
	Topology TopologyVersion
	Groups   []PartitionsGroup
}

func readNodeParts(r *ib.Reader) []NodePartitions {
	n := r.Count(21)
	out := make([]NodePartitions, 0, n)
	for i := 0; i < n; i++ {
		np := NodePartitions{NodeID: r.UUID()}
		m := r.Count(4)
		np.Partitions = make([]int32, m)
		for j := range np.Partitions {
			np.Partitions[j] = r.I32()
		}
		out = append(out, np)
	}
	return out
}

func writeNodeParts(w *ib.Writer, nodes []NodePartitions) {
	w.I32(int32(len(nodes)))
	for _, n := range nodes {
		w.UUID(n.NodeID)
		w.I32(int32(len(n.Partitions)))
		for _, p := range n.Partitions {
			w.I32(p)
		}
	}
}

// DecodeCachePartitions decodes the payload; its layout depends on features
// 13 and 22.
func DecodeCachePartitions(payload []byte, p Proto) (CachePartitions, error) {
	var c CachePartitions
	r := ib.NewReader(payload)
	c.Topology = TopologyVersion{Major: r.I64(), Minor: r.I32()}
	n := r.Count(5)
	for i := 0; i < n && r.Err() == nil; i++ {
		g := PartitionsGroup{Applicable: r.Bool()}
		m := r.Count(4)
		for j := 0; j < m; j++ {
			pc := PartitionsCache{CacheID: r.I32()}
			if g.Applicable {
				k := r.Count(8)
				for x := 0; x < k; x++ {
					pc.KeyConfigs = append(pc.KeyConfigs, [2]int32{r.I32(), r.I32()})
				}
			}
			g.Caches = append(g.Caches, pc)
		}
		if g.Applicable {
			g.Nodes = readNodeParts(r)
			if p.Has(FeatureDCAware) {
				g.DCNodes = readNodeParts(r)
			}
		}
		if p.Has(FeatureAllAffinityMappings) {
			g.DefaultAffinity = r.Bool()
		}
		c.Groups = append(c.Groups, g)
	}
	if err := r.End(); err != nil {
		return CachePartitions{}, decodeErr("cache partitions", err)
	}
	return c, nil
}

// Encode builds the payload.
func (c *CachePartitions) Encode(p Proto) []byte {
	var w ib.Writer
	w.I64(c.Topology.Major)
	w.I32(c.Topology.Minor)
	w.I32(int32(len(c.Groups)))
	for _, g := range c.Groups {
		w.Bool(g.Applicable)
		w.I32(int32(len(g.Caches)))
		for _, pc := range g.Caches {
			w.I32(pc.CacheID)
			if g.Applicable {
				w.I32(int32(len(pc.KeyConfigs)))
				for _, kc := range pc.KeyConfigs {
					w.I32(kc[0])
					w.I32(kc[1])
				}
			}
		}
		if g.Applicable {
			writeNodeParts(&w, g.Nodes)
			if p.Has(FeatureDCAware) {
				writeNodeParts(&w, g.DCNodes)
			}
		}
		if p.Has(FeatureAllAffinityMappings) {
			w.Bool(g.DefaultAffinity)
		}
	}
	return w.Bytes()
}
