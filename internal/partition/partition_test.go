package partition

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/keel-go/keel/internal/errs"
)

// javaMurmur2 is a deliberately literal transcription of Java's
// Utils.murmur2, in Java's own signed 32-bit arithmetic (>>> written as a
// shift of the uint32 bits), used as an oracle independent of Murmur2's
// unsigned, slice-walking implementation.
func javaMurmur2(data []byte) int32 {
	length := int32(len(data))
	const seed = int32(-1756908916) // 0x9747b28c as a Java int
	const m = int32(0x5bd1e995)
	const r = 24
	h := seed ^ length
	length4 := length / 4
	for i := int32(0); i < length4; i++ {
		i4 := i * 4
		k := int32(data[i4+0]&0xff) + int32(data[i4+1]&0xff)<<8 + int32(data[i4+2]&0xff)<<16 + int32(data[i4+3]&0xff)<<24
		k *= m
		k ^= int32(uint32(k) >> r)
		k *= m
		h *= m
		h ^= k
	}
	switch length % 4 {
	case 3:
		h ^= int32(data[(length&^3)+2]&0xff) << 16
		fallthrough
	case 2:
		h ^= int32(data[(length&^3)+1]&0xff) << 8
		fallthrough
	case 1:
		h ^= int32(data[length&^3] & 0xff)
		h *= m
	}
	h ^= int32(uint32(h) >> 13)
	h *= m
	h ^= int32(uint32(h) >> 15)
	return h
}

// javaPartition is Java's BuiltInPartitioner.partitionForKey.
func javaPartition(key []byte, n int32) int32 {
	return (javaMurmur2(key) & 0x7fffffff) % n
}

func TestMurmur2Vectors(t *testing.T) {
	// librdkafka's vectors (KAFKA-NOTES sec. 4).
	for _, tc := range []struct {
		in   string
		want uint32
	}{
		{"kafka", 0xd067cf64},
		{"giberish123456789", 0x8f552b0c},
		{"", 0x106e08d9},
	} {
		if got := Murmur2([]byte(tc.in)); got != tc.want {
			t.Errorf("Murmur2(%q) = %#08x, want %#08x", tc.in, got, tc.want)
		}
	}
	// Apache Kafka's own UtilsTest.testMurmur2, as signed Java ints.
	for _, tc := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(Murmur2([]byte(tc.in))); got != tc.want {
			t.Errorf("int32(Murmur2(%q)) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestKeyPartitionJavaPublished checks partitions over 1000 partitions that
// kafka-python's test suite records as the output of Java's partitioner.
func TestKeyPartitionJavaPublished(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int32
	}{
		{"", 681},
		{"a", 524},
		{"ab", 434},
		{"abc", 107},
		{"123456789", 566},
		{"\x00 ", 742},
	} {
		if got := KeyPartition([]byte(tc.key), 1000); got != tc.want {
			t.Errorf("KeyPartition(%q, 1000) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// TestKeyPartitionTable: hashes and partitions for n = 3, 6, 10, 100 were
// computed with a third, Python implementation of Java's algorithm, which was
// itself checked against Java's and librdkafka's published vectors.
func TestKeyPartitionTable(t *testing.T) {
	ns := [4]int32{3, 6, 10, 100}
	for _, tc := range []struct {
		key  string
		hash uint32
		want [4]int32
	}{
		{"", 0x106e08d9, [4]int32{0, 3, 1, 81}},
		{"a", 0xa2d0b27c, [4]int32{1, 4, 4, 24}},
		{"ab", 0x12d8262a, [4]int32{2, 2, 4, 34}},
		{"abc", 0x1c94221b, [4]int32{0, 3, 7, 7}},
		{"abcd", 0xb11ab5f4, [4]int32{2, 2, 0, 0}},
		{"abcde", 0x1b897edd, [4]int32{1, 1, 1, 41}},
		{"kafka", 0xd067cf64, [4]int32{1, 4, 0, 80}},
		{"key", 0xbfa176a9, [4]int32{1, 1, 1, 81}},
		{"foo", 0x23a256d0, [4]int32{2, 2, 6, 16}},
		{"bar", 0x3af24dc1, [4]int32{0, 3, 5, 45}},
		{"user-1", 0x53b136cc, [4]int32{2, 2, 8, 28}},
		{"user-2", 0xeca12be0, [4]int32{2, 2, 6, 56}},
		{"user-42", 0x5700682c, [4]int32{1, 4, 0, 60}},
		{"order:1001", 0xe8e4e2ee, [4]int32{1, 4, 6, 66}},
		{"order:1002", 0x0403f018, [4]int32{1, 4, 6, 36}},
		{"giberish123456789", 0x8f552b0c, [4]int32{2, 2, 0, 20}},
		{"0123456789abcdef", 0x55bca7ac, [4]int32{0, 0, 2, 52}},
		{"ключ", 0x7e806270, [4]int32{2, 2, 4, 24}},
		{"日本語キー", 0x562d8a9e, [4]int32{1, 4, 2, 82}},
		{"\x00", 0x166197bc, [4]int32{2, 2, 8, 88}},
		{"\xff\xff\xff\xff", 0x266546a5, [4]int32{2, 5, 9, 29}},
		{"\x80\x00\x00\x00\x01", 0x98d26acc, [4]int32{1, 4, 4, 84}},
		{"The quick brown fox jumps over the lazy dog", 0x1d84d036, [4]int32{0, 0, 8, 18}},
		{strings.Repeat("x", 64), 0x48ddc20d, [4]int32{2, 5, 5, 85}},
	} {
		if got := Murmur2([]byte(tc.key)); got != tc.hash {
			t.Errorf("Murmur2(%q) = %#08x, want %#08x", tc.key, got, tc.hash)
		}
		for i, n := range ns {
			got := KeyPartition([]byte(tc.key), n)
			if got != tc.want[i] {
				t.Errorf("KeyPartition(%q, %d) = %d, want %d", tc.key, n, got, tc.want[i])
			}
			if o := javaPartition([]byte(tc.key), n); o != got {
				t.Errorf("KeyPartition(%q, %d) = %d, Java oracle says %d", tc.key, n, got, o)
			}
		}
	}
}

// TestKeyPartitionOracle compares with the Java transcription on random keys
// of every length 0-67 (all tail lengths, several block counts).
func TestKeyPartitionOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	negative := 0
	for i := 0; i < 20000; i++ {
		key := make([]byte, i%68)
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		h := Murmur2(key)
		if int32(h) != javaMurmur2(key) {
			t.Fatalf("Murmur2(%x) = %#08x, Java oracle %#08x", key, h, uint32(javaMurmur2(key)))
		}
		if int32(h) < 0 {
			negative++
		}
		n := int32(1 + rng.IntN(500))
		if got, want := KeyPartition(key, n), javaPartition(key, n); got != want {
			t.Fatalf("KeyPartition(%x, %d) = %d, want %d", key, n, got, want)
		}
	}
	// Half the hashes are negative as Java ints: the mask-not-abs rule is
	// exercised, not just assumed.
	if negative < 9000 {
		t.Errorf("only %d negative hashes in 20000", negative)
	}
}

func TestKeyPartitionMaskNotAbs(t *testing.T) {
	// "kafka" hashes to 0xd067cf64, negative as a Java int. abs() would give
	// 0x2f98309c; the mask gives 0x5067cf64. They differ mod 10.
	key := []byte("kafka")
	h := int32(Murmur2(key))
	abs := -h
	if (abs % 10) == KeyPartition(key, 10) {
		t.Fatalf("test key does not distinguish abs from mask")
	}
	if got := KeyPartition(key, 10); got != int32(0x5067cf64%10) {
		t.Errorf("KeyPartition(kafka, 10) = %d, want %d", got, 0x5067cf64%10)
	}
	if got := KeyPartition(key, 0); got != Unassigned {
		t.Errorf("KeyPartition(n=0) = %d, want Unassigned", got)
	}
}

func TestDefaultKeyedIgnoresAvailability(t *testing.T) {
	var d Default
	for _, key := range []string{"", "kafka", "user-1", "order:1002"} {
		want := KeyPartition([]byte(key), 6)
		for _, avail := range [][]int32{nil, {0, 1, 2, 3, 4, 5}, {5}, {0, 2}} {
			if got := d.Partition("t", []byte(key), true, 6, avail); got != want {
				t.Errorf("Default(%q, available %v) = %d, want %d", key, avail, got, want)
			}
		}
		// OnNewBatch never moves a keyed record.
		d.OnNewBatch("t", want)
		if got := d.Partition("t", []byte(key), true, 6, []int32{5}); got != want {
			t.Errorf("Default(%q) after OnNewBatch = %d, want %d", key, got, want)
		}
	}
	// "" is a key; a nil key with hasKey is the empty key too.
	if got, want := d.Partition("t", nil, true, 100, nil), KeyPartition([]byte{}, 100); got != want || want != 81 {
		t.Errorf("Default(nil key, hasKey) = %d, want %d (81)", got, want)
	}
}

func TestDefaultNullKeyIsSticky(t *testing.T) {
	var d Default
	avail := []int32{1, 3, 5}
	first := d.Partition("t", nil, false, 6, avail)
	if !contains(avail, first) {
		t.Fatalf("first sticky partition %d not available", first)
	}
	for i := 0; i < 100; i++ {
		if got := d.Partition("t", []byte("ignored"), false, 6, avail); got != first {
			t.Fatalf("sticky moved from %d to %d without a new batch", first, got)
		}
	}
	d.OnNewBatch("t", first)
	next := d.Partition("t", nil, false, 6, avail)
	if next == first || !contains(avail, next) {
		t.Errorf("after OnNewBatch: %d (was %d), want another of %v", next, first, avail)
	}
}

func TestStickyMovesOnlyOnItsOwnBatch(t *testing.T) {
	var s Sticky
	avail := []int32{0, 1, 2, 3, 4, 5, 6, 7}
	cur := s.Partition("t", nil, false, 8, avail)
	// Keys are ignored by Sticky.
	if got := s.Partition("t", []byte("k"), true, 8, avail); got != cur {
		t.Fatalf("Sticky with key moved: %d -> %d", cur, got)
	}
	// A new batch on some other partition (a keyed record's, say) does not
	// move it.
	s.OnNewBatch("t", (cur+1)%8)
	if got := s.Partition("t", nil, false, 8, avail); got != cur {
		t.Fatalf("OnNewBatch(other) moved sticky %d -> %d", cur, got)
	}
	// Topics are independent.
	s.OnNewBatch("other", cur)
	if got := s.Partition("t", nil, false, 8, avail); got != cur {
		t.Fatalf("OnNewBatch(other topic) moved sticky %d -> %d", cur, got)
	}

	seen := map[int32]int{}
	for i := 0; i < 4000; i++ {
		s.OnNewBatch("t", cur)
		// A second, racing OnNewBatch for the same old partition must not
		// move it twice.
		s.OnNewBatch("t", cur)
		next := s.Partition("t", nil, false, 8, avail)
		if next == cur {
			t.Fatalf("OnNewBatch(%d) stayed on %d", cur, next)
		}
		if again := s.Partition("t", nil, false, 8, avail); again != next {
			t.Fatalf("sticky not sticky after move: %d then %d", next, again)
		}
		cur = next
		seen[cur]++
	}
	// Uniform among the 7 others each time: each partition ~500 of 4000.
	for _, p := range avail {
		if seen[p] < 350 || seen[p] > 650 {
			t.Errorf("partition %d chosen %d times of 4000; distribution %v", p, seen[p], seen)
		}
	}
}

func TestStickyAvailability(t *testing.T) {
	var s Sticky
	avail := []int32{2, 7}
	cur := s.Partition("t", nil, false, 10, avail)
	for i := 0; i < 200; i++ {
		s.OnNewBatch("t", cur)
		next := s.Partition("t", nil, false, 10, avail)
		if !contains(avail, next) || next == cur {
			t.Fatalf("moved %d -> %d, want the other of %v", cur, next, avail)
		}
		cur = next
	}
	// One available partition: kept even when it is the one being left.
	s.OnNewBatch("t", cur)
	if got := s.Partition("t", nil, false, 10, []int32{cur}); got != cur {
		t.Errorf("single available %d: got %d", cur, got)
	}
	// None available: any partition but the one being left.
	for i := 0; i < 200; i++ {
		s.OnNewBatch("t", cur)
		next := s.Partition("t", nil, false, 3, nil)
		if next == cur || next < 0 || next >= 3 {
			t.Fatalf("no availability: moved %d -> %d of 3", cur, next)
		}
		cur = next
	}
	// Single-partition topic.
	s.OnNewBatch("one", 0)
	if got := s.Partition("one", nil, false, 1, nil); got != 0 {
		t.Errorf("1-partition topic: %d", got)
	}
	// Partition count below the sticky partition (stale metadata): repick.
	var s2 Sticky
	if got := s2.Partition("t", nil, false, 10, []int32{9}); got != 9 {
		t.Fatalf("single available 9: got %d", got)
	}
	if got := s2.Partition("t", nil, false, 4, nil); got < 0 || got >= 4 {
		t.Errorf("sticky beyond partition count: got %d of 4", got)
	}
}

func TestRoundRobinDistribution(t *testing.T) {
	var r RoundRobin
	counts := make([]int, 6)
	for i := 0; i < 6000; i++ {
		p := r.Partition("t", []byte("same key"), true, 6, nil)
		if p != int32(i%6) {
			t.Fatalf("record %d: partition %d, want %d", i, p, i%6)
		}
		counts[p]++
	}
	for p, c := range counts {
		if c != 1000 {
			t.Errorf("partition %d got %d of 6000", p, c)
		}
	}
	// Only available partitions, evenly.
	avail := []int32{1, 3, 5}
	got := map[int32]int{}
	for i := 0; i < 3000; i++ {
		got[r.Partition("u", nil, false, 6, avail)]++
	}
	if len(got) != 3 || got[1] != 1000 || got[3] != 1000 || got[5] != 1000 {
		t.Errorf("available %v: %v", avail, got)
	}
}

// TestRoundRobinBatchRollover drives RoundRobin with the producer's
// new-batch protocol: every third record opens a new batch, so the producer
// calls OnNewBatch and asks again. Java's partitioner skips a partition each
// time (KAFKA-9965); keel's stays exactly even.
func TestRoundRobinBatchRollover(t *testing.T) {
	var r RoundRobin
	counts := make([]int, 4)
	for i := 0; i < 4000; i++ {
		p, err := Pick(&r, "t", Unassigned, nil, false, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			r.OnNewBatch("t", p)
			again, err := Pick(&r, "t", Unassigned, nil, false, 4, nil)
			if err != nil {
				t.Fatal(err)
			}
			if again != p {
				t.Fatalf("record %d: %d, then %d after OnNewBatch", i, p, again)
			}
			p = again
		}
		counts[p]++
	}
	for p, c := range counts {
		if c != 1000 {
			t.Errorf("partition %d got %d of 4000: %v", p, c, counts)
		}
	}
}

func TestPickExplicitAndManual(t *testing.T) {
	// An explicit partition wins over any partitioner.
	for _, p := range []Partitioner{&Default{}, &Sticky{}, &RoundRobin{}, Manual{}, Func(func(string, []byte, bool, int32, []int32) int32 { return 0 })} {
		got, err := Pick(p, "t", 4, []byte("k"), true, 6, []int32{0})
		if err != nil || got != 4 {
			t.Errorf("%T: Pick(explicit 4) = %d, %v", p, got, err)
		}
	}
	// Manual without an explicit partition: ErrNoPartition, not retriable.
	_, err := Pick(Manual{}, "orders", Unassigned, []byte("k"), true, 6, nil)
	if !errors.Is(err, ErrNoPartition) || errs.IsRetriable(err) || !strings.Contains(err.Error(), "orders") {
		t.Errorf("Manual without partition: %v", err)
	}
	// Explicit beyond the known count: retriable (metadata may be behind).
	_, err = Pick(&Default{}, "t", 6, nil, false, 6, nil)
	if !errors.Is(err, ErrPartitionOutOfRange) || !errs.IsRetriable(err) {
		t.Errorf("explicit 6 of 6: %v (retriable %v)", err, errs.IsRetriable(err))
	}
	// Negative explicit partitions are never valid.
	_, err = Pick(&Default{}, "t", -7, nil, false, 6, nil)
	if !errors.Is(err, ErrPartitionOutOfRange) || errs.IsRetriable(err) {
		t.Errorf("explicit -7: %v", err)
	}
	// Unknown partition count.
	_, err = Pick(&Default{}, "t", Unassigned, []byte("k"), true, 0, nil)
	if !errors.Is(err, ErrPartitionOutOfRange) || !errs.IsRetriable(err) {
		t.Errorf("0 partitions: %v", err)
	}
}

func TestFuncAdapter(t *testing.T) {
	var calls int
	f := Func(func(topic string, key []byte, hasKey bool, n int32, avail []int32) int32 {
		calls++
		if !hasKey {
			return Unassigned
		}
		return int32(len(key)) % n
	})
	if got, err := Pick(f, "t", Unassigned, []byte("abcd"), true, 3, nil); err != nil || got != 1 {
		t.Errorf("Func: %d, %v", got, err)
	}
	f.OnNewBatch("t", 1) // no-op, must not panic
	if _, err := Pick(f, "t", Unassigned, nil, false, 3, nil); !errors.Is(err, ErrNoPartition) {
		t.Errorf("Func declining: %v", err)
	}
	bad := Func(func(string, []byte, bool, int32, []int32) int32 { return 3 })
	if _, err := Pick(bad, "t", Unassigned, nil, false, 3, nil); !errors.Is(err, ErrPartitionOutOfRange) || errs.IsRetriable(err) {
		t.Errorf("Func out of range: %v", err)
	}
	if calls != 2 {
		t.Errorf("calls = %d", calls)
	}
}

// TestConcurrent hammers every partitioner from many goroutines over new and
// existing topics; run with -race.
func TestConcurrent(t *testing.T) {
	parts := []Partitioner{&Default{}, &Sticky{}, &RoundRobin{}}
	avail := []int32{0, 2, 4, 6}
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			key := []byte(fmt.Sprintf("key-%d", g))
			for i := 0; i < 2000; i++ {
				topic := fmt.Sprintf("topic-%d", i%13)
				for _, p := range parts {
					got, err := Pick(p, topic, Unassigned, key, g%2 == 0, 8, avail)
					if err == nil && i%5 == 0 {
						p.OnNewBatch(topic, got)
						got, err = Pick(p, topic, Unassigned, key, g%2 == 0, 8, avail)
					}
					if err != nil || got < 0 || got >= 8 {
						errc <- fmt.Errorf("%T %s: %d, %v", p, topic, got, err)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// Racing callers of one RoundRobin still get exactly one turn each:
	// 8 goroutines * 1000 records spread exactly evenly over avail.
	var r RoundRobin
	var wg2 sync.WaitGroup
	var mu sync.Mutex
	counts := map[int32]int{}
	for g := 0; g < 8; g++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			local := map[int32]int{}
			for i := 0; i < 1000; i++ {
				local[r.Partition("t", nil, false, 8, avail)]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}()
	}
	wg2.Wait()
	for _, p := range avail {
		if counts[p] != 2000 {
			t.Errorf("concurrent round robin: %v", counts)
			break
		}
	}
}

func TestNoAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	key := []byte("0123456789abcdef")
	avail := []int32{0, 1, 2, 3}
	var d Default
	var r RoundRobin
	d.Partition("t", nil, false, 4, avail) // create the topic entries
	r.Partition("t", nil, false, 4, avail)
	for name, f := range map[string]func(){
		"KeyPartition": func() { KeyPartition(key, 12) },
		"Default/key":  func() { _, _ = Pick(&d, "t", Unassigned, key, true, 4, avail) },
		"Default/null": func() { _, _ = Pick(&d, "t", Unassigned, nil, false, 4, avail) },
		"Default/roll": func() { d.OnNewBatch("t", d.Partition("t", nil, false, 4, avail)) },
		"RoundRobin":   func() { _, _ = Pick(&r, "t", Unassigned, nil, false, 4, avail) },
		"explicit":     func() { _, _ = Pick(Manual{}, "t", 2, nil, false, 4, avail) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs per call", name, n)
		}
	}
}

func BenchmarkKeyPartition(b *testing.B) {
	key := []byte("0123456789abcdef") // 16 bytes
	b.SetBytes(int64(len(key)))
	b.ReportAllocs()
	var sink int32
	for b.Loop() {
		sink += KeyPartition(key, 12)
	}
	_ = sink
}

func BenchmarkDefaultNullKey(b *testing.B) {
	var d Default
	avail := []int32{0, 1, 2, 3, 4, 5}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = Pick(&d, "topic", Unassigned, nil, false, 6, avail)
		}
	})
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
