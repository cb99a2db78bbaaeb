package record

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestVarintRoundTrip(t *testing.T) {
	cases := []int32{
		0, 1, -1, 2, -2, 63, -64, 64, -65, 8191, -8192, 8192, -8193,
		1<<20 - 1, 1 << 20, -(1 << 20), 1<<27 - 1, 1 << 27, -(1 << 27) - 1,
		math.MaxInt32, math.MinInt32, math.MaxInt32 - 1, math.MinInt32 + 1,
	}
	for _, v := range cases {
		b := AppendVarint(nil, v)
		// encoding/binary's PutVarint is the same zigzag base-128 scheme:
		// an independent reference for the bytes.
		want := binary.AppendVarint(nil, int64(v))
		if string(b) != string(want) {
			t.Errorf("AppendVarint(%d) = % x, want % x", v, b, want)
		}
		if n := VarintLen(v); n != len(b) {
			t.Errorf("VarintLen(%d) = %d, encoded %d bytes", v, n, len(b))
		}
		got, n := ReadVarint(append(b, 0xff)) // trailing junk must be ignored
		if got != v || n != len(b) {
			t.Errorf("ReadVarint(% x) = %d,%d want %d,%d", b, got, n, v, len(b))
		}
		if _, n := ReadVarint(b[:len(b)-1]); n != 0 {
			t.Errorf("ReadVarint of truncated % x: n=%d, want 0", b[:len(b)-1], n)
		}
	}
}

func TestVarlongRoundTrip(t *testing.T) {
	cases := []int64{
		0, 1, -1, 63, -64, 64, -65, math.MaxInt32, math.MinInt32,
		1 << 35, -(1 << 35), 1<<62 - 1, -(1 << 62),
		math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1,
	}
	for _, v := range cases {
		b := AppendVarlong(nil, v)
		want := binary.AppendVarint(nil, v)
		if string(b) != string(want) {
			t.Errorf("AppendVarlong(%d) = % x, want % x", v, b, want)
		}
		if n := VarlongLen(v); n != len(b) {
			t.Errorf("VarlongLen(%d) = %d, encoded %d bytes", v, n, len(b))
		}
		got, n := ReadVarlong(b)
		if got != v || n != len(b) {
			t.Errorf("ReadVarlong(% x) = %d,%d want %d,%d", b, got, n, v, len(b))
		}
		if _, n := ReadVarlong(b[:len(b)-1]); n != 0 {
			t.Errorf("ReadVarlong of truncated % x: n=%d, want 0", b[:len(b)-1], n)
		}
	}
}

func TestZigzagKnownBytes(t *testing.T) {
	cases := []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0x00}},
		{-1, []byte{0x01}}, // Kafka's null length
		{1, []byte{0x02}},
		{-64, []byte{0x7f}},
		{64, []byte{0x80, 0x01}},
		{math.MaxInt64, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{math.MinInt64, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, c := range cases {
		if got := AppendVarlong(nil, c.v); string(got) != string(c.want) {
			t.Errorf("AppendVarlong(%d) = % x, want % x", c.v, got, c.want)
		}
	}
	if got := AppendVarint(nil, math.MinInt32); string(got) != "\xff\xff\xff\xff\x0f" {
		t.Errorf("AppendVarint(MinInt32) = % x", got)
	}
}

func TestVarintRejectsOverflow(t *testing.T) {
	// Six bytes, and a fifth byte with bits beyond 32: both invalid varints.
	for _, b := range [][]byte{
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
		{0xff, 0xff, 0xff, 0xff, 0x1f},
		{},
	} {
		if _, n := ReadVarint(b); n != 0 {
			t.Errorf("ReadVarint(% x) accepted %d bytes", b, n)
		}
	}
	for _, b := range [][]byte{
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
	} {
		if _, n := ReadVarlong(b); n != 0 {
			t.Errorf("ReadVarlong(% x) accepted %d bytes", b, n)
		}
	}
}

func TestCRC32CKnownValue(t *testing.T) {
	// The standard CRC-32C check value (RFC 3720 appendix B.4).
	if got := CRC32C([]byte("123456789")); got != 0xe3069283 {
		t.Fatalf("CRC32C(123456789) = %#x, want 0xe3069283", got)
	}
}
