package mvcc

// WatchBatchMaxRevs exports watchBatchMaxRevs to the mvcc_test tests.
const WatchBatchMaxRevs = watchBatchMaxRevs
