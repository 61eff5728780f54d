// Package binary holds the Apache Ignite 2.x binary data format as the thin
// client protocol uses it: type codes, typed values (a type-code byte followed
// by the value), the Go types that represent them, and the Java-compatible
// hashes the server uses for cache ids, type ids and key placement.
//
// It sits at the bottom of the ignite/ stack: ignite/wire builds protocol
// messages out of these values, ignite/client sends them and
// ignite/ignitetest decodes them on the server side.
//
// Go values map to Ignite types as follows (reading produces the same Go types,
// so every supported value round-trips byte for byte):
//
//	nil          null (101)        []byte        byte[] (12)
//	int8         byte (1)          []int16       short[] (13)
//	int16        short (2)         []int32       int[] (14)
//	int32        int (3)           []int64       long[] (15)
//	int64        long (4)          []float32     float[] (16)
//	float32      float (5)         []float64     double[] (17)
//	float64      double (6)        []Char        char[] (18)
//	Char         char (7)          []bool        bool[] (19)
//	bool         bool (8)          Array         string[]/UUID[]/date[]/decimal[]/timestamp[]/time[]
//	string       string (9)        ObjectArray   object[] (23) / enum[] (29)
//	UUID         UUID (10)         Collection    collection (24)
//	Date         date (11)         Map           map (25)
//	Timestamp    timestamp (33)    Wrapped       wrapped binary object (27)
//	Time         time (36)         Enum          enum (28) / binary enum (38)
//	Decimal      decimal (30)      Object        complex object (103), kept as raw bytes
//	Class        class (32)        Handle        handle (102), not resolved
//	Raw          an already-encoded typed value, written verbatim
//
// Decoding never panics: malformed or truncated input yields an error wrapping
// ErrMalformed, and no length read from the input allocates more memory than
// the input itself could fill.
package binary
