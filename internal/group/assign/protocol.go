package assign

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Newest versions of the consumer protocol payloads this package knows. They
// are what the Java client (3.x) sends; older peers parse a newer version as
// the newest they know, which works because versions only append fields.
const (
	SubscriptionVersion int16 = 3
	AssignmentVersion   int16 = 3
)

// ProtocolType is the JoinGroup protocol_type of consumer groups.
const ProtocolType = "consumer"

// ErrShortAssignment reports a SyncGroup assignment too short to hold even a
// version. The broker sends one when the leader left this member out of its
// plan; the Java client refuses it too, so it is an error and the member
// decides what to do (rejoin), rather than silently consuming nothing.
var ErrShortAssignment = errors.New("consumer protocol assignment is empty")

// Subscription is the consumer protocol metadata a member puts in JoinGroup
// for each assignor it offers (ConsumerProtocolSubscription).
type Subscription struct {
	// Version is written as given (clamped to 0..SubscriptionVersion);
	// decoding reports the version found on the wire, even one newer
	// than SubscriptionVersion.
	Version int16
	// Topics the member wants; encoded sorted and without duplicates,
	// as the Java client does.
	Topics []string
	// UserData is assignor-specific (see Assignor.UserData); nil is
	// encoded as a null byte array, as Java does.
	UserData []byte
	// Owned partitions by topic (v1+), what a cooperative member still
	// consumes when it rejoins.
	Owned map[string][]int32
	// Generation the member last synced in (v2+); -1 when it has none.
	Generation int32
	// Rack is the member's client.rack (v3+); "" means none and is
	// encoded as null, because Java treats an empty rack as absent.
	Rack string
}

// AppendTo appends the encoded subscription to dst. Topics and owned
// partitions are written in sorted order: the Java leader compares owned
// partitions positionally in places (KAFKA-12898), and sorted output is
// also what makes encoding deterministic.
func (s *Subscription) AppendTo(dst []byte) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = clampVersion(s.Version, SubscriptionVersion)
	m.Topics = sortedUnique(s.Topics)
	m.UserData = s.UserData
	for _, t := range sortedTopics(s.Owned) {
		m.OwnedPartitions = append(m.OwnedPartitions, kmsg.ConsumerMemberMetadataOwnedPartition{
			Topic:      t,
			Partitions: sortedPartitions(s.Owned[t]),
		})
	}
	m.Generation = s.Generation
	if s.Rack != "" {
		rack := s.Rack
		m.Rack = &rack
	}
	return m.AppendTo(dst)
}

// DecodeSubscription parses a member's JoinGroup metadata. A version newer
// than SubscriptionVersion is parsed as SubscriptionVersion (trailing bytes
// are ignored). A payload that announces a version but stops before that
// version's fields is parsed as the longest older version that fits: some
// clients (old Sarama, see franz-go #493) announce v1 without owned
// partitions, and dropping such a member would leave it without partitions.
func DecodeSubscription(b []byte) (Subscription, error) {
	version, err := payloadVersion(b, "subscription")
	if err != nil {
		return Subscription{}, err
	}
	var m kmsg.ConsumerMemberMetadata
	err = m.ReadFrom(b)
	if err != nil {
		err = retryOlder(b, min(version, SubscriptionVersion), m.ReadFrom)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("decoding consumer protocol subscription v%d: %w", version, err)
	}
	s := Subscription{
		Version:    version,
		Topics:     m.Topics,
		UserData:   bytes.Clone(m.UserData), // ReadFrom aliases the response buffer
		Generation: m.Generation,
	}
	var owned gathered
	for _, op := range m.OwnedPartitions {
		owned = owned.add(op.Topic, op.Partitions)
	}
	s.Owned = owned.done()
	if m.Rack != nil {
		s.Rack = *m.Rack
	}
	return s, nil
}

// Assignment is what the leader hands each member in SyncGroup
// (ConsumerProtocolAssignment).
type Assignment struct {
	// Version is written as given (clamped to 0..AssignmentVersion);
	// decoding reports the version found on the wire.
	Version int16
	// Partitions assigned, by topic.
	Partitions map[string][]int32
	// UserData is assignor-specific; none of the built-in assignors use it.
	UserData []byte
}

// AppendTo appends the encoded assignment to dst, topics and partitions
// sorted so the bytes are deterministic. Topics without partitions are
// left out.
func (a *Assignment) AppendTo(dst []byte) []byte {
	m := kmsg.NewConsumerMemberAssignment()
	m.Version = clampVersion(a.Version, AssignmentVersion)
	for _, t := range sortedTopics(a.Partitions) {
		if len(a.Partitions[t]) == 0 {
			continue
		}
		m.Topics = append(m.Topics, kmsg.ConsumerMemberAssignmentTopic{
			Topic:      t,
			Partitions: sortedPartitions(a.Partitions[t]),
		})
	}
	m.UserData = a.UserData
	return m.AppendTo(dst)
}

// DecodeAssignment parses the assignment a member got in SyncGroup. Newer
// versions are parsed as AssignmentVersion; fewer than two bytes is
// ErrShortAssignment.
func DecodeAssignment(b []byte) (Assignment, error) {
	version, err := payloadVersion(b, "assignment")
	if err != nil {
		return Assignment{}, err
	}
	var m kmsg.ConsumerMemberAssignment
	if err := m.ReadFrom(b); err != nil {
		return Assignment{}, fmt.Errorf("decoding consumer protocol assignment v%d: %w", version, err)
	}
	a := Assignment{Version: version, UserData: bytes.Clone(m.UserData)}
	var parts gathered
	for _, t := range m.Topics {
		parts = parts.add(t.Topic, t.Partitions)
	}
	a.Partitions = parts.done()
	return a, nil
}

// payloadVersion reads the i16 version every consumer protocol payload
// starts with; negative versions are rejected as Java does.
func payloadVersion(b []byte, what string) (int16, error) {
	if len(b) < 2 {
		if what == "assignment" {
			return 0, ErrShortAssignment
		}
		return 0, fmt.Errorf("consumer protocol %s is %d bytes, too short for a version", what, len(b))
	}
	v := int16(binary.BigEndian.Uint16(b))
	if v < 0 {
		return 0, fmt.Errorf("unsupported consumer protocol %s version %d", what, v)
	}
	return v, nil
}

// retryOlder re-reads b as each version below from, newest first, until one
// parses. It works on a copy so the caller's buffer is never modified.
func retryOlder(b []byte, from int16, read func([]byte) error) error {
	err := errors.New("no older version to try")
	c := bytes.Clone(b)
	for v := from - 1; v >= 0; v-- {
		binary.BigEndian.PutUint16(c, uint16(v))
		if err = read(c); err == nil {
			return nil
		}
	}
	return err
}

func clampVersion(v, newest int16) int16 {
	return max(0, min(v, newest))
}

// addPartitions merges ps into m[topic], keeping the list sorted and free of
// duplicates; a payload that repeats a topic is merged rather than letting
// the last copy win.
func addPartitions(m map[string][]int32, topic string, ps []int32) map[string][]int32 {
	merged := sortedPartitions(append(m[topic], ps...))
	if len(merged) == 0 {
		return m
	}
	if m == nil {
		m = make(map[string][]int32)
	}
	m[topic] = merged
	return m
}

// gathered collects decoded partitions by topic and sorts each topic's list
// once, in done. A payload may repeat a topic (merged, not last-wins);
// merging with addPartitions at every repeat re-sorted the growing list
// each time, quadratic in the payload's size, which a hostile member could
// use to stall the group's leader.
type gathered map[string][]int32

func (g gathered) add(topic string, ps []int32) gathered {
	if g == nil {
		g = make(gathered)
	}
	g[topic] = append(g[topic], ps...)
	return g
}

// done returns the partitions by topic, sorted and without duplicates,
// leaving out topics without partitions; nil when there are none.
func (g gathered) done() map[string][]int32 {
	for t, ps := range g {
		if ps = sortedPartitions(ps); len(ps) == 0 {
			delete(g, t)
		} else {
			g[t] = ps
		}
	}
	if len(g) == 0 {
		return nil
	}
	return g
}
