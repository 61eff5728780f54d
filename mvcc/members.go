package mvcc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Member is an ignetcd node as registered in the engine, so that every node
// can list the live ones (etcd's MemberList).
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	ClientURLs []string `json:"clientURLs"`
	// Expires is when the registration lapses without a heartbeat (unix ns).
	Expires int64 `json:"expires"`
}

// memberKeyPrefix marks member records in the meta table.
var memberKeyPrefix = []byte("member/")

const (
	memberHeartbeat = 3 * time.Second
	memberTTL       = 10 * time.Second
)

func memberKey(id uint64) []byte {
	return append(append([]byte(nil), memberKeyPrefix...), revisionKey(int64(id))...)
}

// RegisterMember records m in the engine and keeps it alive until the store
// closes, when the record is removed.
func (s *Store) RegisterMember(ctx context.Context, m Member) error {
	if err := s.writeMember(ctx, m); err != nil {
		return err
	}
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		t := time.NewTicker(memberHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				s.removeMember(ctx, m.ID)
				cancel()
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), memberHeartbeat)
				if err := s.writeMember(ctx, m); err != nil {
					s.lg.Debug().Err(err).Msg("member heartbeat failed")
				}
				cancel()
			}
		}
	}()
	return nil
}

func (s *Store) writeMember(ctx context.Context, m Member) error {
	m.Expires = time.Now().Add(memberTTL).UnixNano()
	b, _ := json.Marshal(m)
	etx, err := s.eng.Begin(ctx)
	if err != nil {
		return err
	}
	if err := etx.PutAll(ctx, s.tables.meta, []Entry{{Key: memberKey(m.ID), Value: b}}); err != nil {
		_ = etx.Rollback(context.Background())
		return err
	}
	return etx.Commit(ctx)
}

func (s *Store) removeMember(ctx context.Context, id uint64) {
	etx, err := s.eng.Begin(ctx)
	if err != nil {
		return
	}
	if err := etx.RemoveAll(ctx, s.tables.meta, [][]byte{memberKey(id)}); err != nil {
		_ = etx.Rollback(context.Background())
		return
	}
	_ = etx.Commit(ctx)
}

// Members lists the registered members whose heartbeat is current, by id.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	now := time.Now().UnixNano()
	var out []Member
	err := s.eng.Scan(ctx, s.tables.meta, func(key, value []byte) error {
		if !bytes.HasPrefix(key, memberKeyPrefix) {
			return nil
		}
		var m Member
		if json.Unmarshal(value, &m) == nil && m.Expires > now {
			out = append(out, m)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}
