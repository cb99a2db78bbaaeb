package main

import (
	"context"
	"fmt"
	"time"

	"github.com/keel-go/keel"
)

// produceTxn runs keel produce --transactional-id: one transaction per
// every records input lines (0: one for the whole input), the rest
// committed at the end of input; an interrupted run aborts the open one.
type produceTxn struct {
	every   int64
	inTxn   int64 // records of the open transaction
	commits int
	err     error // why the run stopped, if a commit failed
}

// begin opens the first transaction.
func (x *produceTxn) begin(p *keel.Producer) error {
	if err := p.BeginTxn(); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	x.inTxn = 0
	return nil
}

// sent counts one record; after every records it commits and begins the
// next transaction. It returns false when the run must stop.
func (x *produceTxn) sent(ctx context.Context, p *keel.Producer) bool {
	x.inTxn++
	if x.every <= 0 || x.inTxn < x.every {
		return true
	}
	if !x.commit(ctx, p) {
		return false
	}
	if err := x.begin(p); err != nil {
		x.err = err
		return false
	}
	return true
}

func (x *produceTxn) commit(ctx context.Context, p *keel.Producer) bool {
	if err := p.CommitTxn(ctx); err != nil {
		x.err = fmt.Errorf("committing transaction %d: %w", x.commits+1, err)
		return false
	}
	x.commits++
	return true
}

// end commits the open transaction at the end of input, or aborts it when
// the run was interrupted or a commit failed.
func (x *produceTxn) end(p *keel.Producer, interrupted bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if interrupted || x.err != nil {
		if err := p.AbortTxn(ctx); err != nil && x.err == nil {
			return fmt.Errorf("aborting the open transaction: %w", err)
		}
		if x.err != nil {
			return x.err
		}
		return fmt.Errorf("interrupted: the open transaction (%d records) was aborted; %d committed before", x.inTxn, x.commits)
	}
	if !x.commit(ctx, p) {
		_ = p.AbortTxn(ctx)
		return x.err
	}
	return nil
}
