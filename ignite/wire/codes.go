package wire

import "fmt"

// Op is an operation code (reference section 13).
type Op int16

// Operation codes used by ignetcd, its test double and the captured traffic.
const (
	OpResourceClose            Op = 0
	OpHeartbeat                Op = 1
	OpGetIdleTimeout           Op = 2
	OpCacheGet                 Op = 1000
	OpCachePut                 Op = 1001
	OpCachePutIfAbsent         Op = 1002
	OpCacheGetAll              Op = 1003
	OpCachePutAll              Op = 1004
	OpCacheGetAndPut           Op = 1005
	OpCacheGetAndReplace       Op = 1006
	OpCacheGetAndRemove        Op = 1007
	OpCacheGetAndPutIfAbsent   Op = 1008
	OpCacheReplace             Op = 1009
	OpCacheReplaceIfEquals     Op = 1010
	OpCacheContainsKey         Op = 1011
	OpCacheContainsKeys        Op = 1012
	OpCacheClear               Op = 1013
	OpCacheClearKey            Op = 1014
	OpCacheClearKeys           Op = 1015
	OpCacheRemoveKey           Op = 1016
	OpCacheRemoveIfEquals      Op = 1017
	OpCacheRemoveKeys          Op = 1018
	OpCacheRemoveAll           Op = 1019
	OpCacheGetSize             Op = 1020
	OpCacheGetNames            Op = 1050
	OpCacheCreateWithName      Op = 1051
	OpCacheGetOrCreateWithName Op = 1052
	OpCacheCreateWithConfig    Op = 1053
	OpCacheGetOrCreateWithCfg  Op = 1054
	OpCacheGetConfiguration    Op = 1055
	OpCacheDestroy             Op = 1056
	OpCacheNodePartitions      Op = 1100
	OpCachePartitions          Op = 1101
	OpQueryScan                Op = 2000
	OpQueryScanCursorGetPage   Op = 2001
	OpQueryContinuous          Op = 2006
	OpQueryContinuousEvent     Op = 2007
	OpBinaryConfigurationGet   Op = 3004
	OpTxStart                  Op = 4000
	OpTxEnd                    Op = 4001
	OpClusterGroupGetEndpoints Op = 5102
	OpComputeTaskFinished      Op = 6001
)

var opNames = map[Op]string{
	OpResourceClose: "RESOURCE_CLOSE", OpHeartbeat: "HEARTBEAT", OpGetIdleTimeout: "GET_IDLE_TIMEOUT",
	OpCacheGet: "CACHE_GET", OpCachePut: "CACHE_PUT", OpCachePutIfAbsent: "CACHE_PUT_IF_ABSENT",
	OpCacheGetAll: "CACHE_GET_ALL", OpCachePutAll: "CACHE_PUT_ALL", OpCacheGetAndPut: "CACHE_GET_AND_PUT",
	OpCacheGetAndReplace: "CACHE_GET_AND_REPLACE", OpCacheGetAndRemove: "CACHE_GET_AND_REMOVE",
	OpCacheGetAndPutIfAbsent: "CACHE_GET_AND_PUT_IF_ABSENT", OpCacheReplace: "CACHE_REPLACE",
	OpCacheReplaceIfEquals: "CACHE_REPLACE_IF_EQUALS", OpCacheContainsKey: "CACHE_CONTAINS_KEY",
	OpCacheContainsKeys: "CACHE_CONTAINS_KEYS", OpCacheClear: "CACHE_CLEAR", OpCacheClearKey: "CACHE_CLEAR_KEY",
	OpCacheClearKeys: "CACHE_CLEAR_KEYS", OpCacheRemoveKey: "CACHE_REMOVE_KEY",
	OpCacheRemoveIfEquals: "CACHE_REMOVE_IF_EQUALS", OpCacheRemoveKeys: "CACHE_REMOVE_KEYS",
	OpCacheRemoveAll: "CACHE_REMOVE_ALL", OpCacheGetSize: "CACHE_GET_SIZE", OpCacheGetNames: "CACHE_GET_NAMES",
	OpCacheCreateWithName: "CACHE_CREATE_WITH_NAME", OpCacheGetOrCreateWithName: "CACHE_GET_OR_CREATE_WITH_NAME",
	OpCacheCreateWithConfig: "CACHE_CREATE_WITH_CONFIGURATION", OpCacheGetOrCreateWithCfg: "CACHE_GET_OR_CREATE_WITH_CONFIGURATION",
	OpCacheGetConfiguration: "CACHE_GET_CONFIGURATION", OpCacheDestroy: "CACHE_DESTROY",
	OpCacheNodePartitions: "CACHE_NODE_PARTITIONS", OpCachePartitions: "CACHE_PARTITIONS",
	OpQueryScan: "QUERY_SCAN", OpQueryScanCursorGetPage: "QUERY_SCAN_CURSOR_GET_PAGE",
	OpQueryContinuous: "QUERY_CONTINUOUS", OpQueryContinuousEvent: "QUERY_CONTINUOUS_EVENT_NOTIFICATION",
	OpBinaryConfigurationGet: "BINARY_CONFIGURATION_GET", OpTxStart: "TX_START", OpTxEnd: "TX_END",
	OpClusterGroupGetEndpoints: "CLUSTER_GROUP_GET_NODE_ENDPOINTS", OpComputeTaskFinished: "COMPUTE_TASK_FINISHED",
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("OP_%d", int16(o))
}

// Status codes of error responses (reference 10.1).
const (
	StatusSuccess              int32 = 0
	StatusFailed               int32 = 1
	StatusInvalidOpCode        int32 = 2
	StatusInvalidNodeState     int32 = 10
	StatusNodeInRecoveryMode   int32 = 11
	StatusFunctionalityDisable int32 = 100
	StatusCacheDoesNotExist    int32 = 1000
	StatusCacheExists          int32 = 1001
	StatusCacheConfigInvalid   int32 = 1002
	StatusTooManyCursors       int32 = 1010
	StatusResourceDoesNotExist int32 = 1011
	StatusSecurityViolation    int32 = 1012
	StatusTxLimitExceeded      int32 = 1020
	StatusTxNotFound           int32 = 1021
	StatusTooManyComputeTasks  int32 = 1030
	StatusEntryProcessorExc    int32 = 1040
	StatusAuthFailed           int32 = 2000
)

// Response flags (reference 2.5).
const (
	FlagError           int16 = 0x0001
	FlagTopologyChanged int16 = 0x0002
	FlagNotification    int16 = 0x0004
)

// Cache request flags (reference 5.2).
const (
	CacheFlagKeepBinary    int8 = 0x01
	CacheFlagTransactional int8 = 0x02
	CacheFlagExpiryPolicy  int8 = 0x04
)

// Transaction concurrency and isolation (reference 6.1).
const (
	TxOptimistic  int8 = 0
	TxPessimistic int8 = 1

	TxReadCommitted  int8 = 0
	TxRepeatableRead int8 = 1
	TxSerializable   int8 = 2
)

// Continuous-query event types (reference 8.3).
const (
	EventCreated int8 = 0
	EventUpdated int8 = 1
	EventRemoved int8 = 2
	EventExpired int8 = 3
)
