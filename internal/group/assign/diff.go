package assign

// Diff compares what a member owned before a SyncGroup with what it was
// assigned: revoked must be given up (onPartitionsRevoked, then rejoin under
// the cooperative protocol) and added must be started
// (onPartitionsAssigned). Partitions in both are untouched. Results are
// sorted; topics with nothing to report are absent.
func Diff(owned, assigned map[string][]int32) (revoked, added map[string][]int32) {
	return minus(owned, assigned), minus(assigned, owned)
}

// minus returns a - b.
func minus(a, b map[string][]int32) map[string][]int32 {
	var out map[string][]int32
	for t, ps := range a {
		drop := make(map[int32]bool, len(b[t]))
		for _, p := range b[t] {
			drop[p] = true
		}
		var keep []int32
		for _, p := range ps {
			if !drop[p] {
				keep = append(keep, p)
			}
		}
		out = addPartitions(out, t, keep)
	}
	return out
}
