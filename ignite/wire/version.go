package wire

import "fmt"

// Version is a thin-client protocol version.
type Version struct {
	Major, Minor, Patch int16
}

// Protocol versions known to 2.11 and 2.19 servers (reference 3.4). A server
// accepts exactly these and nothing in between.
var (
	V1_0_0 = Version{1, 0, 0}
	V1_1_0 = Version{1, 1, 0}
	V1_2_0 = Version{1, 2, 0}
	V1_3_0 = Version{1, 3, 0}
	V1_4_0 = Version{1, 4, 0}
	V1_5_0 = Version{1, 5, 0}
	V1_6_0 = Version{1, 6, 0}
	V1_7_0 = Version{1, 7, 0}
)

// ServerVersions lists every version a real server accepts, oldest first.
var ServerVersions = []Version{V1_0_0, V1_1_0, V1_2_0, V1_3_0, V1_4_0, V1_5_0, V1_6_0, V1_7_0}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or 1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	switch {
	case v.Major != o.Major:
		return cmp(v.Major, o.Major)
	case v.Minor != o.Minor:
		return cmp(v.Minor, o.Minor)
	default:
		return cmp(v.Patch, o.Patch)
	}
}

// AtLeast reports whether v is o or newer.
func (v Version) AtLeast(o Version) bool { return v.Compare(o) >= 0 }

func cmp(a, b int16) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Proto is what a connection negotiated: the protocol version and the feature
// set echoed by the server. Several layouts depend on it.
type Proto struct {
	Version  Version
	Features Features
}

// HasFlags reports whether responses carry the i16 flags field (1.4.0+);
// older versions use the legacy i32 status header.
func (p Proto) HasFlags() bool { return p.Version.AtLeast(V1_4_0) }

// Has reports whether feature f was negotiated.
func (p Proto) Has(f Feature) bool { return p.Features.Has(f) }

// IsServerVersion reports whether a real server accepts v.
func IsServerVersion(v Version) bool {
	for _, s := range ServerVersions {
		if s == v {
			return true
		}
	}
	return false
}
