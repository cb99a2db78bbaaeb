package assign

import "slices"

// withholdTransfers applies KIP-429 to the sticky target: a partition
// assigned to a member that did not claim it, while some other member does
// claim it, is left unassigned this round. Its claimant sees it missing from
// its assignment and revokes it (committing first); in the rebalance that
// member then triggers nobody claims it and it is handed out. Handing it
// over at once would let two members consume it concurrently. Partitions
// whose target owner already claims them are never withheld, so what stays
// put is never revoked.
func (s *stickyState) withholdTransfers() {
	for p, mem := range s.owner {
		if mem < 0 {
			continue
		}
		if len(s.claimedBy[p]) > 0 && !slices.Contains(s.claimedBy[p], mem) {
			s.take(p) // someone else claims it
		}
	}
}
