package group

import (
	"errors"
	"testing"
)

// TestFencedCommitMakesMemberRejoin: a commit refused in the member's
// current generation queues the same loss a heartbeat's answer would (Run
// then reports the partitions lost and rejoins); one for a generation the
// member already left is ignored.
func TestFencedCommitMakesMemberRejoin(t *testing.T) {
	m := New(Config{Group: "g"}, nil, nil)
	m.generation = 4
	m.Fenced(3, errors.New("stale"))
	select {
	case <-m.lost:
		t.Fatal("a refusal for an older generation queued a loss")
	default:
	}
	m.Fenced(4, errors.New("unknown member"))
	select {
	case sig := <-m.lost:
		if sig.generation != 4 {
			t.Fatalf("loss for generation %d, want 4", sig.generation)
		}
	default:
		t.Fatal("a refusal in the current generation queued no loss")
	}

	cm := NewConsumer(Config{Group: "g"}, nil, nil)
	cm.generation = 7
	cm.Fenced(6, errors.New("stale"))
	if cm.fenced != nil {
		t.Fatal("consumer member: a refusal for an older epoch fenced it")
	}
	cm.Fenced(7, errors.New("fenced member epoch"))
	if cm.fenced == nil || cm.generation != -1 {
		t.Fatalf("consumer member: fenced %v generation %d, want fenced and -1", cm.fenced, cm.generation)
	}
	select {
	case <-cm.wake:
	default:
		t.Fatal("consumer member: Run was not woken to report the loss")
	}
}
