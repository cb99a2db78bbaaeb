package assign

import (
	"bytes"
	"reflect"
	"testing"
)

// The eager sticky user_data in Java's StickyAssignor V1 layout, built
// field by field: [topic, [partition]], generation.
func TestStickyUserDataJavaV1(t *testing.T) {
	w := new(wire).i32(2).
		str("a").i32(2).i32(0).i32(5).
		str("b").i32(1).i32(3).
		i32(17)
	owned, gen, ok := decodeStickyUserData(w.b)
	if !ok || gen != 17 || !reflect.DeepEqual(owned, map[string][]int32{"a": {0, 5}, "b": {3}}) {
		t.Fatalf("got %v, %d, %v", owned, gen, ok)
	}
	if enc := Sticky().UserData(map[string][]int32{"b": {3}, "a": {5, 0}}, 17); !bytes.Equal(enc, w.b) {
		t.Fatalf("encoded\n%x, Java sends\n%x", enc, w.b)
	}
}

// V0 (pre KIP-341, no generation) still parses, with generation -1;
// garbage means "owns nothing", as in Java.
func TestStickyUserDataFallbacks(t *testing.T) {
	v0 := new(wire).i32(1).str("a").i32(1).i32(2).b
	owned, gen, ok := decodeStickyUserData(v0)
	if !ok || gen != -1 || !reflect.DeepEqual(owned, map[string][]int32{"a": {2}}) {
		t.Fatalf("v0: got %v, %d, %v", owned, gen, ok)
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"negative len":  new(wire).i32(-1).b,
		"cut short":     new(wire).i32(1).str("a").i32(3).i32(0).b,
		"huge array":    new(wire).i32(1 << 30).b,
		"bad topic len": new(wire).i32(1).i16(-5).b,
	} {
		if owned, gen, ok := decodeStickyUserData(b); ok || owned != nil || gen != -1 {
			t.Errorf("%s: got %v, %d, %v", name, owned, gen, ok)
		}
	}
	if ud := Sticky().UserData(nil, -1); ud != nil {
		t.Errorf("never-assigned member sends %x, want nothing", ud)
	}
}

// Generation recovery for cooperative subscriptions older than v2: Java's
// 4-byte user_data, librdkafka's sticky layout, or nothing.
func TestGenerationFromUserData(t *testing.T) {
	for name, tc := range map[string]struct {
		b    []byte
		want int32
	}{
		"java":       {new(wire).i32(8).b, 8},
		"librdkafka": {encodeStickyUserData(map[string][]int32{"t": {1}}, 6), 6},
		"none":       {nil, -1},
		"garbage":    {[]byte{1, 2, 3}, -1},
	} {
		if got := generationFromUserData(tc.b); got != tc.want {
			t.Errorf("%s: got %d, want %d", name, got, tc.want)
		}
	}
	// A pre-v2 cooperative member's claim carries the user_data generation.
	m := Member{Owned: map[string][]int32{"t": {0}}, Generation: -1, UserData: new(wire).i32(8).b}
	if _, gen := coopClaim(&m); gen != 8 {
		t.Errorf("coopClaim generation %d, want 8", gen)
	}
}
