package client

import (
	"context"
	"errors"

	"github.com/ignetcd/ignetcd/ignite/wire"
)

// ScanOptions configure Cache.Scan.
type ScanOptions struct {
	// PageSize is the number of entries per page (default 1024).
	PageSize int32
	// Partition restricts the scan to one partition when OnePartition is set.
	OnePartition bool
	Partition    int32
}

// Cursor iterates over the entries of a scan, page by page. It is bound to
// the connection that opened it and is not safe for concurrent use.
//
//	cur, err := cache.Scan(ctx, client.ScanOptions{})
//	for cur.Next(ctx) { use(cur.Key(), cur.Value()) }
//	err = cur.Err(); cur.Close(ctx)
type Cursor struct {
	conn    *conn
	id      int64
	page    []KV
	pos     int // index of the current entry in page, -1 before the first
	hasMore bool
	err     error
	closed  bool
}

// Scan opens a scan query over the cache. A scan is not a snapshot: entries
// changed meanwhile may or may not appear. Inside a transaction it runs in
// it, but does not see the transaction's own uncommitted writes.
func (cc Cache) Scan(ctx context.Context, opts ScanOptions) (*Cursor, error) {
	if opts.PageSize <= 0 {
		opts.PageSize = 1024
	}
	req := &wire.ScanRequest{CacheHeader: cc.header(), PageSize: opts.PageSize, Partition: -1}
	if opts.OnePartition {
		req.Partition = opts.Partition
	}
	var cn *conn
	if cc.tx != nil {
		cn = cc.tx.conn
	} else {
		var err error
		if cn, err = cc.client.conn(ctx); err != nil {
			return nil, err
		}
	}
	var page wire.ScanPage
	decode := func(p []byte) (err error) {
		page, err = wire.DecodeScanPage(p, true)
		return err
	}
	var err error
	if cc.tx != nil {
		err = cc.tx.call(ctx, req, &req.CacheHeader, decode)
	} else {
		err = cn.call(ctx, req, nil, decode)
	}
	if err != nil {
		// A response that arrives after ctx ended leaves a server cursor
		// open until the connection ends; the per-connection cursor limit
		// (128) makes that worth avoiding, but it is harmless otherwise.
		return nil, err
	}
	return &Cursor{conn: cn, id: page.CursorID, page: page.Entries, pos: -1, hasMore: page.HasMore}, nil
}

// Next advances to the next entry, fetching a page when needed. It returns
// false at the end or on error (see Err).
func (c *Cursor) Next(ctx context.Context) bool {
	if c.err != nil || c.closed {
		return false
	}
	for c.pos+1 >= len(c.page) {
		if !c.hasMore {
			return false
		}
		var page wire.ScanPage
		err := c.conn.call(ctx, &wire.ResourceRequest{Code: wire.OpQueryScanCursorGetPage, ResourceID: c.id}, nil,
			func(p []byte) (err error) {
				page, err = wire.DecodeScanPage(p, false)
				return err
			})
		if err != nil {
			c.err = err
			return false
		}
		c.page, c.pos, c.hasMore = page.Entries, -1, page.HasMore
	}
	c.pos++
	return true
}

// Key and Value return the current entry.
func (c *Cursor) Key() any   { return c.page[c.pos].Key }
func (c *Cursor) Value() any { return c.page[c.pos].Value }

// Err returns the error that stopped Next, if any.
func (c *Cursor) Err() error { return c.err }

// Close releases the server-side cursor if it still holds data (the server
// releases an exhausted cursor by itself).
func (c *Cursor) Close(ctx context.Context) error {
	if c.closed {
		return nil
	}
	c.closed = true
	if !c.hasMore || c.conn.err() != nil {
		return nil
	}
	c.hasMore = false
	err := c.conn.call(ctx, &wire.ResourceRequest{Code: wire.OpResourceClose, ResourceID: c.id}, nil, nil)
	if errors.Is(err, ErrConnectionLost) {
		return nil // closed with the connection
	}
	return err
}

// ScanAll runs a scan and calls fn for every entry until fn returns an
// error, which ScanAll then returns.
func (cc Cache) ScanAll(ctx context.Context, pageSize int32, fn func(key, value any) error) (err error) {
	cur, err := cc.Scan(ctx, ScanOptions{PageSize: pageSize})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cur.Close(ctx); err == nil {
			err = cerr
		}
	}()
	for cur.Next(ctx) {
		if err := fn(cur.Key(), cur.Value()); err != nil {
			return err
		}
	}
	return cur.Err()
}
