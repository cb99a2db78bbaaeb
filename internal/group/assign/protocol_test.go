package assign

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// wire builds consumer protocol bytes field by field, independently of the
// code under test, the way the Java client lays them out.
type wire struct{ b []byte }

func (w *wire) i16(v int16) *wire { w.b = binary.BigEndian.AppendUint16(w.b, uint16(v)); return w }
func (w *wire) i32(v int32) *wire { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)); return w }
func (w *wire) str(s string) *wire {
	w.i16(int16(len(s)))
	w.b = append(w.b, s...)
	return w
}
func (w *wire) nullBytes() *wire { return w.i32(-1) }
func (w *wire) bytes(b []byte) *wire {
	w.i32(int32(len(b)))
	w.b = append(w.b, b...)
	return w
}

// A Subscription v1 with owned partitions, as a Java 2.4+ cooperative
// member sends it: version, topics, null user_data, owned partitions.
func TestDecodeSubscriptionV1FromJavaBytes(t *testing.T) {
	w := new(wire).i16(1).
		i32(2).str("orders").str("payments").
		nullBytes().
		i32(2).
		str("orders").i32(2).i32(0).i32(3).
		str("payments").i32(1).i32(7)
	got, err := DecodeSubscription(w.b)
	if err != nil {
		t.Fatal(err)
	}
	want := Subscription{
		Version:    1,
		Topics:     []string{"orders", "payments"},
		Owned:      map[string][]int32{"orders": {0, 3}, "payments": {7}},
		Generation: -1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// And we produce exactly those bytes.
	if enc := want.AppendTo(nil); !bytes.Equal(enc, w.b) {
		t.Fatalf("encoded\n%x, Java sends\n%x", enc, w.b)
	}
}

// A Subscription v3 as a Java 3.x cooperative-sticky member sends it: the
// generation also in the 4-byte user_data, owned partitions, generation,
// rack.
func TestDecodeSubscriptionV3FromJavaBytes(t *testing.T) {
	w := new(wire).i16(3).
		i32(1).str("t").
		bytes([]byte{0, 0, 0, 9}).
		i32(1).str("t").i32(1).i32(2).
		i32(9).
		str("use1-az1")
	got, err := DecodeSubscription(w.b)
	if err != nil {
		t.Fatal(err)
	}
	want := Subscription{
		Version:    3,
		Topics:     []string{"t"},
		UserData:   []byte{0, 0, 0, 9},
		Owned:      map[string][]int32{"t": {2}},
		Generation: 9,
		Rack:       "use1-az1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if enc := want.AppendTo(nil); !bytes.Equal(enc, w.b) {
		t.Fatalf("encoded\n%x, Java sends\n%x", enc, w.b)
	}
	if ud := CooperativeSticky().UserData(nil, 9); !bytes.Equal(ud, want.UserData) {
		t.Fatalf("cooperative-sticky user_data %x, Java sends %x", ud, want.UserData)
	}
}

// An Assignment as the Java leader sends it (version 3, topics, null
// user_data).
func TestDecodeAssignmentFromJavaBytes(t *testing.T) {
	w := new(wire).i16(3).
		i32(2).
		str("a").i32(3).i32(0).i32(1).i32(4).
		str("b").i32(1).i32(2).
		nullBytes()
	got, err := DecodeAssignment(w.b)
	if err != nil {
		t.Fatal(err)
	}
	want := Assignment{Version: 3, Partitions: map[string][]int32{"a": {0, 1, 4}, "b": {2}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if enc := want.AppendTo(nil); !bytes.Equal(enc, w.b) {
		t.Fatalf("encoded\n%x, Java sends\n%x", enc, w.b)
	}
}

// Round trip at every version: fields a version lacks come back as their
// defaults (no owned partitions, generation -1, no rack).
func TestSubscriptionRoundTrip(t *testing.T) {
	full := Subscription{
		Topics:     []string{"b", "a", "b"},
		UserData:   []byte("ud"),
		Owned:      map[string][]int32{"a": {3, 1}, "b": {0}},
		Generation: 12,
		Rack:       "r1",
	}
	for v := int16(0); v <= SubscriptionVersion; v++ {
		in := full
		in.Version = v
		got, err := DecodeSubscription(in.AppendTo(nil))
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		want := Subscription{Version: v, Topics: []string{"a", "b"}, UserData: []byte("ud"), Generation: -1}
		if v >= 1 {
			want.Owned = map[string][]int32{"a": {1, 3}, "b": {0}}
		}
		if v >= 2 {
			want.Generation = 12
		}
		if v >= 3 {
			want.Rack = "r1"
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("v%d: got %+v, want %+v", v, got, want)
		}
	}
	// Null and empty user_data stay distinct, as in Java.
	for _, ud := range [][]byte{nil, {}} {
		s := Subscription{Version: 0, Topics: []string{"t"}, UserData: ud}
		got, err := DecodeSubscription(s.AppendTo(nil))
		if err != nil || (got.UserData == nil) != (ud == nil) {
			t.Errorf("user_data %#v came back as %#v (%v)", ud, got.UserData, err)
		}
	}
}

func TestAssignmentRoundTrip(t *testing.T) {
	for v := int16(0); v <= AssignmentVersion; v++ {
		in := Assignment{Version: v, Partitions: map[string][]int32{"x": {2, 0}, "y": {5}, "empty": nil}, UserData: []byte{1}}
		got, err := DecodeAssignment(in.AppendTo(nil))
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		want := Assignment{Version: v, Partitions: map[string][]int32{"x": {0, 2}, "y": {5}}, UserData: []byte{1}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("v%d: got %+v, want %+v", v, got, want)
		}
	}
}

// Versions newer than we know parse as the newest known, ignoring what a
// future version appends; the version on the wire is reported.
func TestDecodeNewerVersions(t *testing.T) {
	sub := new(wire).i16(7).
		i32(1).str("t").nullBytes().
		i32(0).
		i32(4).
		str("rack").
		i32(12345).str("future field")
	got, err := DecodeSubscription(sub.b)
	if err != nil {
		t.Fatal(err)
	}
	want := Subscription{Version: 7, Topics: []string{"t"}, Generation: 4, Rack: "rack"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	asg := new(wire).i16(9).i32(1).str("t").i32(1).i32(0).nullBytes().i32(99)
	a, err := DecodeAssignment(asg.b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Assignment{Version: 9, Partitions: map[string][]int32{"t": {0}}}); !reflect.DeepEqual(a, want) {
		t.Fatalf("got %+v, want %+v", a, want)
	}
	// Encoding clamps to what we can write.
	s := Subscription{Version: 9, Topics: []string{"t"}, Generation: -1}
	if enc := s.AppendTo(nil); binary.BigEndian.Uint16(enc) != uint16(SubscriptionVersion) {
		t.Fatalf("encoded version %d", binary.BigEndian.Uint16(enc))
	}
}

// Some clients announce v1 but stop after user_data (franz-go #493); we
// parse them as v0 instead of dropping the member. The input is not
// modified.
func TestDecodeSubscriptionTruncatedNewerVersion(t *testing.T) {
	b := new(wire).i16(1).i32(1).str("t").bytes([]byte("x")).b
	orig := bytes.Clone(b)
	got, err := DecodeSubscription(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Subscription{Version: 1, Topics: []string{"t"}, UserData: []byte("x"), Generation: -1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if !bytes.Equal(b, orig) {
		t.Fatal("input modified")
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, err := DecodeAssignment(nil); !errors.Is(err, ErrShortAssignment) {
		t.Errorf("empty assignment: %v", err)
	}
	if _, err := DecodeAssignment([]byte{0}); !errors.Is(err, ErrShortAssignment) {
		t.Errorf("one-byte assignment: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":            nil,
		"negative version": new(wire).i16(-1).i32(0).nullBytes().b,
		"topic cut short":  new(wire).i16(0).i32(1).i16(10).b,
		"huge array":       new(wire).i16(0).i32(1 << 30).b,
	} {
		if _, err := DecodeSubscription(b); err == nil {
			t.Errorf("subscription %s: no error", name)
		}
		if name != "empty" {
			if _, err := DecodeAssignment(b); err == nil {
				t.Errorf("assignment %s: no error", name)
			}
		}
	}
}

// Decoded user_data must not alias the caller's buffer, which is the
// broker response the connection may reuse.
func TestDecodeCopiesUserData(t *testing.T) {
	b := new(wire).i16(0).i32(1).str("t").bytes([]byte("abc")).b
	s, err := DecodeSubscription(b)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'z'
	if string(s.UserData) != "abc" {
		t.Fatalf("user_data aliased the input: %q", s.UserData)
	}
}

func TestMemberFromSubscription(t *testing.T) {
	s := Subscription{Version: 3, Topics: []string{"t"}, UserData: []byte{1}, Owned: map[string][]int32{"t": {1}}, Generation: 4, Rack: "r"}
	got := MemberFromSubscription("id", "inst", s)
	want := Member{ID: "id", InstanceID: "inst", Topics: []string{"t"}, UserData: []byte{1}, Owned: map[string][]int32{"t": {1}}, Generation: 4, Rack: "r"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestByName(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Protocol
	}{{RangeName, Eager}, {RoundRobinName, Eager}, {StickyName, Eager}, {CooperativeStickyName, Cooperative}} {
		a, ok := ByName(tc.name)
		if !ok || a.Name() != tc.name || a.Protocol() != tc.p {
			t.Errorf("ByName(%q) = %v, %v", tc.name, a, ok)
		}
	}
	if _, ok := ByName("nope"); ok {
		t.Error("unknown name found")
	}
}
