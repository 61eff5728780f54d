package mvcc

// WatchScanMaxRevs exports watchScanMaxRevs to the mvcc_test tests.
const WatchScanMaxRevs = watchScanMaxRevs

// MostScanned reports the most revisions one catch-up step of ws looked at.
func MostScanned(ws *WatchStream) int64 {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.scanned
}
