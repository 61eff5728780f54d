package wire

import "strings"

// Feature is a bit of the protocol feature bitmask (reference 3.5).
type Feature int

// Feature bits. Only those without a layout effect, or whose layout this
// package implements, may be advertised by a client.
const (
	FeatureUserAttributes             Feature = 0
	FeatureExecuteTaskByName          Feature = 1
	FeatureClusterStates              Feature = 2
	FeatureClusterGroupGetNodesEndpts Feature = 3
	FeatureClusterGroups              Feature = 4
	FeatureServiceInvoke              Feature = 5
	FeatureDefaultQueryTimeout        Feature = 6
	FeatureQueryPartitionsBatchSize   Feature = 7
	FeatureBinaryConfiguration        Feature = 8
	FeatureGetServiceDescriptors      Feature = 9
	FeatureServiceInvokeCallCtx       Feature = 10
	FeatureHeartbeat                  Feature = 11
	FeatureDataReplicationOperations  Feature = 12
	FeatureAllAffinityMappings        Feature = 13
	FeatureIndexQuery                 Feature = 14
	FeatureIndexQueryLimit            Feature = 15
	FeatureServiceTopology            Feature = 16
	FeatureCacheInvoke                Feature = 17
	FeatureTxAwareQueries             Feature = 18
	FeatureForceDeactivationFlag      Feature = 19
	FeatureCacheStorages              Feature = 20
	FeatureSQLCacheCreation           Feature = 21
	FeatureDCAware                    Feature = 22
	FeatureQueryInitiatorID           Feature = 23
	FeatureCacheAffinityCfg           Feature = 24
)

// Features is a feature bitmask in its wire form (Java BitSet bytes: bit n is
// bit n%8 of byte n/8). It keeps exactly the bytes that were received so that
// re-encoding reproduces them.
type Features []byte

// NewFeatures returns the mask holding exactly bits, with no trailing zero
// bytes (the encoding Java's BitSet produces).
func NewFeatures(bits ...Feature) Features {
	var f Features
	for _, b := range bits {
		if b < 0 {
			continue
		}
		for int(b)/8 >= len(f) {
			f = append(f, 0)
		}
		f[b/8] |= 1 << (b % 8)
	}
	return f
}

// Has reports whether bit b is set.
func (f Features) Has(b Feature) bool {
	if b < 0 || int(b)/8 >= len(f) {
		return false
	}
	return f[b/8]&(1<<(b%8)) != 0
}

// Intersect returns the bits set in both f and o, in canonical form.
func (f Features) Intersect(o Features) Features {
	var bits []Feature
	for _, b := range f.Bits() {
		if o.Has(b) {
			bits = append(bits, b)
		}
	}
	return NewFeatures(bits...)
}

// Bits lists the set bits in increasing order.
func (f Features) Bits() []Feature {
	var out []Feature
	for i, by := range f {
		for j := 0; j < 8; j++ {
			if by&(1<<j) != 0 {
				out = append(out, Feature(i*8+j))
			}
		}
	}
	return out
}

func (f Features) String() string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, b := range f.Bits() {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(itoa(int(b)))
	}
	sb.WriteByte('}')
	return sb.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
