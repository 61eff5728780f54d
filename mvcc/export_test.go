package mvcc

// WatchBatchMaxRevs exports watchBatchMaxRevs to the mvcc_test tests.
const WatchBatchMaxRevs = watchBatchMaxRevs

// QueuedWrites reports how many requests wait for the writer.
func (s *Store) QueuedWrites() int { return len(s.writes) }
