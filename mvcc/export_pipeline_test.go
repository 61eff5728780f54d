package mvcc

// PipelinedGroups reports how many write groups evaluated on the node's own
// unreleased writes instead of waiting for the feed.
func PipelinedGroups(s *Store) int64 { return s.pipelinedGroups.Load() }

// WatchScanMaxRevs exports watchScanMaxRevs to the mvcc_test tests.
const WatchScanMaxRevs = watchScanMaxRevs

// MostScanned reports the most revisions one catch-up step of ws looked at.
func MostScanned(ws *WatchStream) int64 {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.scanned
}
