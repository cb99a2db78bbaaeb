package topicpart

import (
	"slices"
	"testing"
)

func TestStringSortFlatten(t *testing.T) {
	if got := (TP{"orders", 7}).String(); got != "orders/7" {
		t.Fatalf("String %q", got)
	}
	tps := []TP{{"b", 0}, {"a", 10}, {"a", 2}}
	Sort(tps)
	if want := []TP{{"a", 2}, {"a", 10}, {"b", 0}}; !slices.Equal(tps, want) {
		t.Fatalf("Sort %v, want %v", tps, want)
	}
	if got := Flatten(Group(tps)); !slices.Equal(got, tps) {
		t.Fatalf("Flatten(Group(%v)) = %v", tps, got)
	}
}
