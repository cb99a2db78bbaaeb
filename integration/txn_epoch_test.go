package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// TestTxnAfterAbortNotFenced: transactions alternate abort and commit on
// one producer; none may be refused as fenced. A sink drain that read the
// producer id before an abort reset it could send the next transaction's
// first records under the old epoch, which the coordinator had fenced
// (INVALID_PRODUCER_EPOCH, fatal): about every second run of 300
// transactions under -race before the fix.
func TestTxnAfterAbortNotFenced(t *testing.T) {
	const txns, per = 300, 30
	cl := startCluster(t, keeltest.Topic("txn-epoch", 3))
	c := newClient(t, cl)
	ctx := testCtx(t, 120*time.Second)
	p := newTxnProducer(t, c, "txn-epoch")
	var committed []string
	for i := range txns {
		vals := txnValues(fmt.Sprintf("t%d", i), per)
		commit := i%2 == 0
		if err := lagTxn(ctx, p, "txn-epoch", vals, commit); err != nil {
			t.Fatalf("transaction %d (commit %v): %v", i, commit, err)
		}
		if commit {
			committed = append(committed, vals...)
		}
	}
	checkExactly(t, "read_committed", messageValues(readAll(t, ctx, c, "txn-epoch", 3, len(committed), true)), committed)
}
