package assign

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

type plan = map[string]map[string][]int32

func TestRangeJavadocExample(t *testing.T) {
	members := []Member{
		{ID: "C1", Topics: []string{"t1", "t0"}},
		{ID: "C0", Topics: []string{"t0", "t1"}},
	}
	got := Range().Assign(members, map[string]int32{"t0": 3, "t1": 3})
	want := plan{
		"C0": {"t0": {0, 1}, "t1": {0, 1}},
		"C1": {"t0": {2}, "t1": {2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Java's RangeAssignor Javadoc: with instance ids, static members are
// ordered by instance id whatever their (new) member ids, so a rolling
// bounce that renames C0->C3 and C1->C2 does not shuffle the assignment.
func TestRangeStaticMembersOrderByInstanceID(t *testing.T) {
	members := []Member{
		{ID: "C2", InstanceID: "I1", Topics: []string{"t0", "t1"}},
		{ID: "C3", InstanceID: "I0", Topics: []string{"t0", "t1"}},
	}
	got := Range().Assign(members, map[string]int32{"t0": 3, "t1": 3})
	want := plan{
		"C3": {"t0": {0, 1}, "t1": {0, 1}},
		"C2": {"t0": {2}, "t1": {2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Static members sort before dynamic ones even when the dynamic member id
// sorts first (Java MemberInfo.compareTo).
func TestRangeStaticBeforeDynamic(t *testing.T) {
	members := []Member{
		{ID: "a-dynamic", Topics: []string{"t"}},
		{ID: "z-static", InstanceID: "x", Topics: []string{"t"}},
	}
	got := Range().Assign(members, map[string]int32{"t": 3})
	want := plan{"z-static": {"t": {0, 1}}, "a-dynamic": {"t": {2}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// More members than partitions, a topic without metadata and a member
// subscribed only to it: the last gets an empty (but present) entry.
func TestRangeSparse(t *testing.T) {
	members := []Member{
		{ID: "a", Topics: []string{"t"}},
		{ID: "b", Topics: []string{"t"}},
		{ID: "c", Topics: []string{"t", "gone"}},
		{ID: "d", Topics: []string{"gone"}},
	}
	got := Range().Assign(members, map[string]int32{"t": 2})
	want := plan{"a": {"t": {0}}, "b": {"t": {1}}, "c": {}, "d": {}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRoundRobinJavadocExamples(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []Member
		ppt     map[string]int32
		want    plan
	}{{
		name: "identical",
		members: []Member{
			{ID: "C0", Topics: []string{"t0", "t1"}},
			{ID: "C1", Topics: []string{"t0", "t1"}},
		},
		ppt: map[string]int32{"t0": 3, "t1": 3},
		want: plan{
			"C0": {"t0": {0, 2}, "t1": {1}},
			"C1": {"t0": {1}, "t1": {0, 2}},
		},
	}, {
		name: "different subscriptions",
		members: []Member{
			{ID: "C2", Topics: []string{"t0", "t1", "t2"}},
			{ID: "C0", Topics: []string{"t0"}},
			{ID: "C1", Topics: []string{"t0", "t1"}},
		},
		ppt: map[string]int32{"t0": 1, "t1": 2, "t2": 3},
		want: plan{
			"C0": {"t0": {0}},
			"C1": {"t1": {0}},
			"C2": {"t1": {1}, "t2": {0, 1, 2}},
		},
	}, {
		name: "static members renamed by a bounce",
		members: []Member{
			{ID: "C5", InstanceID: "I0", Topics: []string{"t0", "t1"}},
			{ID: "C3", InstanceID: "I1", Topics: []string{"t0", "t1"}},
			{ID: "C4", InstanceID: "I2", Topics: []string{"t0", "t1"}},
		},
		ppt: map[string]int32{"t0": 3, "t1": 3},
		want: plan{
			"C5": {"t0": {0}, "t1": {0}},
			"C3": {"t0": {1}, "t1": {1}},
			"C4": {"t0": {2}, "t1": {2}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := RoundRobin().Assign(tc.members, tc.ppt)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Java compares strings by UTF-16 code unit: U+FFFF sorts after U+10000
// (a surrogate pair starting 0xD800), the opposite of Go's byte order.
func TestJavaStringOrder(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		sign int
	}{
		{"a", "b", -1}, {"b", "a", 1}, {"a", "a", 0}, {"a", "ab", -1},
		{"\uFFFF", "\U00010000", 1},
		{"\U00010000", "\U00010001", -1},
		{"\uD7FF", "\U00010000", -1},
	} {
		got := javaCompare(tc.a, tc.b)
		if (got < 0) != (tc.sign < 0) || (got > 0) != (tc.sign > 0) {
			t.Errorf("javaCompare(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.sign)
		}
	}
}

// Property: range and roundrobin assign every partition of every
// subscribed topic exactly once, only to subscribers; range is balanced
// per topic, roundrobin overall when subscriptions are identical; both are
// deterministic whatever the input order.
func TestRangeRoundRobinProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		identical := i%2 == 0
		members, ppt := randomTable(r, 10, identical)
		for _, a := range []Assignor{Range(), RoundRobin()} {
			got := a.Assign(members, ppt)
			checkValid(t, members, ppt, got, true)
			shuffled := append([]Member(nil), members...)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			// Duplicate ids keep the first copy, so only unique ids
			// promise the same plan for any input order.
			if again := a.Assign(shuffled, ppt); !hasDuplicateIDs(members) && !reflect.DeepEqual(got, again) {
				t.Fatalf("%s: not deterministic:\n%v\n%v", a.Name(), got, again)
			}
			if a.Name() == RangeName {
				checkPerTopicBalance(t, uniqueMembers(members), got)
			}
			if a.Name() == RoundRobinName && identical {
				checkIdenticalBalance(t, uniqueMembers(members), got)
			}
			if t.Failed() {
				t.Fatalf("%s failed on members %+v, partitions %v: %v", a.Name(), members, ppt, got)
			}
		}
	}
}

func hasDuplicateIDs(members []Member) bool {
	return len(uniqueMembers(members)) != len(members)
}

// checkPerTopicBalance asserts range's guarantee: per topic, the shares of
// its subscribers (zero included) differ by at most one.
func checkPerTopicBalance(t *testing.T, members []Member, p plan) {
	t.Helper()
	lo, hi := map[string]int{}, map[string]int{}
	for _, m := range members {
		for _, topic := range sortedUnique(m.Topics) {
			n := len(p[m.ID][topic])
			if l, ok := lo[topic]; !ok || n < l {
				lo[topic] = n
			}
			hi[topic] = max(hi[topic], n)
		}
	}
	for topic := range hi {
		if hi[topic]-lo[topic] > 1 {
			t.Errorf("range unbalanced on %s: %d..%d", topic, lo[topic], hi[topic])
		}
	}
}

func checkIdenticalBalance(t *testing.T, members []Member, p plan) {
	t.Helper()
	lo, hi := -1, 0
	for _, m := range members {
		c := count(p, m.ID)
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	if hi-lo > 1 {
		t.Errorf("unbalanced: %d..%d", lo, hi)
	}
}
