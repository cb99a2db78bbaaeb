package keel

import (
	"fmt"
	"time"
)

// TransactionalID makes the producer transactional (docs/TRANSACTIONS.md):
// records are produced between BeginTxn and CommitTxn or AbortTxn, and
// read_committed consumers see them only once committed. It implies
// idempotence and AcksAll. A producer starting with an id fences every
// older producer with the same id (their open transaction is aborted and
// they get ErrFenced).
func TransactionalID(id string) ProducerOption {
	return func(c *producerConfig) { c.txnID, c.txnIDSet = id, true }
}

// TransactionTimeout is how long the coordinator lets a transaction stay
// open before aborting it (default 60s, as in Java). A producer whose
// transaction was aborted that way is fenced.
func TransactionTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.txnTimeout = d }
}

// validateTxn checks the transactional options; called from validate.
func (c *producerConfig) validateTxn(bad func(opt, problem, fix string)) {
	if !c.txnIDSet {
		return
	}
	if c.txnID == "" {
		bad("TransactionalID", "empty id", "pass a non-empty id, stable across restarts of the same instance")
	}
	if c.idempotentSet && !c.idempotent {
		bad("Idempotence", "a transactional producer is idempotent", "drop Idempotence(false)")
	}
	if c.acks != AcksAll {
		bad("WithAcks", "a transactional producer needs AcksAll", "drop WithAcks, or use AcksAll")
	}
	if c.txnTimeout < time.Second || c.txnTimeout > 15*time.Minute {
		bad("TransactionTimeout", fmt.Sprintf("%v is outside 1s..15m (brokers refuse more than transaction.max.timeout.ms, 15m by default)", c.txnTimeout), "use e.g. 60*time.Second")
	}
	c.idempotent = true
}
