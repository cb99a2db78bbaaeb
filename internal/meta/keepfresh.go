package meta

import (
	"context"
	"time"

	"github.com/keel-go/keel/internal/wait"
)

// KeepFresh refreshes the snapshot each time it grows older than MaxAge,
// until ctx ends. Snapshots are otherwise refreshed only when something
// reads a stale one or a request fails, and a settled group member reads
// none: without this its leader never saw a subscribed topic grow, nor a
// regex member a new topic (the Java client refreshes every
// metadata.max.age.ms for the same reason). A failed refresh is retried
// after a quarter of MaxAge, never in a tight loop.
func (m *Meta) KeepFresh(ctx context.Context) {
	if m.cfg.MaxAge <= 0 {
		return // every read refreshes
	}
	for {
		delay := m.cfg.MaxAge / 4
		if s := m.snap.Load(); s != nil {
			delay = max(m.cfg.MaxAge-time.Since(s.At), delay)
		}
		if !wait.Sleep(ctx, delay) {
			return
		}
		if _, err := m.Snapshot(ctx); err != nil && ctx.Err() != nil {
			return
		}
	}
}
