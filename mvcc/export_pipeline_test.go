package mvcc

// PipelinedGroups reports how many write groups evaluated on the node's own
// unreleased writes instead of waiting for the feed.
func PipelinedGroups(s *Store) int64 { return s.pipelinedGroups.Load() }
