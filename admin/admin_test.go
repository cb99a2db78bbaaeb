package admin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
)

func TestNewRejectsNilClient(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, keel.ErrInvalidConfig) {
		t.Fatalf("New(nil) = %v, want ErrInvalidConfig", err)
	}
}

func TestValidateSpecs(t *testing.T) {
	for _, tc := range []struct {
		specs []TopicSpec
		want  string // "" for valid
	}{
		{[]TopicSpec{{Name: "a", Partitions: 3, ReplicationFactor: 1}}, ""},
		{[]TopicSpec{{Name: "a", Partitions: -1, ReplicationFactor: -1}}, ""},
		{nil, "at least one"},
		{[]TopicSpec{{Partitions: 1, ReplicationFactor: 1}}, "the name is empty"},
		{[]TopicSpec{{Name: "a", Partitions: 1, ReplicationFactor: 1}, {Name: "a", Partitions: 1, ReplicationFactor: 1}}, "twice"},
		{[]TopicSpec{{Name: "a", Partitions: 0, ReplicationFactor: 1}}, "0 partitions"},
		{[]TopicSpec{{Name: "a", Partitions: -2, ReplicationFactor: 1}}, "-2 partitions"},
		{[]TopicSpec{{Name: "a", Partitions: 1, ReplicationFactor: 0}}, "replication factor 0"},
	} {
		err := validateSpecs(tc.specs)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("validateSpecs(%+v) = %v, want %q", tc.specs, err, tc.want)
		}
	}
}

// The sentinels match errors by Kafka code, whatever the message.
func TestSentinelsMatchByCode(t *testing.T) {
	for code, s := range map[int16]error{36: ErrTopicExists, 37: ErrInvalidPartitions, 38: ErrInvalidReplicationFactor, 68: ErrGroupNotEmpty, 69: ErrGroupNotFound} {
		err := codeErr(code, "b:1", nil, "doing something")
		if !errors.Is(err, s) {
			t.Errorf("code %d does not match its sentinel", code)
		}
		if errors.Is(err, ErrTopicExists) != (code == 36) {
			t.Errorf("code %d matches ErrTopicExists", code)
		}
	}
	if errs.Code(groupNotFound("g", "")) != 69 || !strings.Contains(groupNotFound("g", "").Error(), `group "g" does not exist`) {
		t.Errorf("groupNotFound: %v", groupNotFound("g", ""))
	}
}

func TestOffsetSpecs(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	if Earliest().ts != -2 || Latest().ts != -1 || AtTime(at).ts != 1_700_000_000_123 {
		t.Fatalf("specs: %v %v %v", Earliest(), Latest(), AtTime(at))
	}
	// Before 1970 cannot be asked for: it would read as earliest/latest.
	if AtTime(time.UnixMilli(-5)).ts != 0 {
		t.Errorf("AtTime before the epoch = %d, want 0", AtTime(time.UnixMilli(-5)).ts)
	}
}
