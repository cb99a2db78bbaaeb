package assign

// Sticky returns the eager "sticky" assignor (KIP-54): a balanced
// assignment that keeps as many of each member's previous partitions as
// possible. Its members revoke everything before rejoining, so previous
// ownership travels outside the live assignment: a keel member should put
// its last assignment both in user_data (UserData; what a Java leader
// reads) and in the Subscription's Owned and Generation (what a librdkafka
// leader reads).
func Sticky() Assignor { return stickyAssignor{} }

// CooperativeSticky returns the "cooperative-sticky" assignor (KIP-429):
// the sticky assignment, except that a partition moving from one member to
// another is withheld from its new owner for one rebalance, during which the
// old owner revokes it; the follow-up rebalance hands it over. Its members
// report ownership in the Subscription's owned partitions and generation.
//
// Its plan is also valid under the eager protocol (eager members own
// nothing when they join, so nothing is withheld), which is why Java lets it
// serve groups that have not finished migrating to cooperative.
func CooperativeSticky() Assignor { return coopStickyAssignor{} }

type stickyAssignor struct{}

func (stickyAssignor) Name() string       { return StickyName }
func (stickyAssignor) Protocol() Protocol { return Eager }

// UserData is Java's StickyAssignor V1 layout (previous assignment and its
// generation): the Java leader reads ownership only from there, because an
// eager Java member reports no owned partitions. A member that was never
// assigned sends none, as Java does.
func (stickyAssignor) UserData(owned map[string][]int32, generation int32) []byte {
	if len(owned) == 0 && generation < 0 {
		return nil
	}
	return encodeStickyUserData(owned, generation)
}

func (stickyAssignor) Assign(members []Member, partitionsPerTopic map[string]int32) map[string]map[string][]int32 {
	s := newStickyState(members, partitionsPerTopic, stickyClaim)
	s.balance()
	return s.plan()
}

// stickyClaim reads what an eager sticky member owned. The Java leader
// reads only user_data and librdkafka only the owned-partitions field, and
// members of either kind may be in our group, so we take the owned field
// when it is non-empty (librdkafka, keel) and user_data otherwise (Java);
// when both are present they describe the same assignment.
func stickyClaim(m *Member) (map[string][]int32, int32) {
	ud, udGen, ok := decodeStickyUserData(m.UserData)
	if len(m.Owned) > 0 {
		gen := m.Generation
		if gen < 0 && ok {
			gen = udGen
		}
		return m.Owned, gen
	}
	if ok {
		return ud, udGen
	}
	return nil, m.Generation
}

type coopStickyAssignor struct{}

func (coopStickyAssignor) Name() string       { return CooperativeStickyName }
func (coopStickyAssignor) Protocol() Protocol { return Cooperative }

// UserData is the generation alone, as Java sends it, for leaders that
// predate Subscription v2's generation field. Ownership itself travels in
// the Subscription's owned partitions.
func (coopStickyAssignor) UserData(_ map[string][]int32, generation int32) []byte {
	return encodeGenerationUserData(generation)
}

func (coopStickyAssignor) Assign(members []Member, partitionsPerTopic map[string]int32) map[string]map[string][]int32 {
	s := newStickyState(members, partitionsPerTopic, coopClaim)
	s.balance()
	s.withholdTransfers()
	return s.plan()
}

// coopClaim reads a cooperative member's ownership: always the owned field
// (Java and librdkafka agree); the generation comes from Subscription v2+,
// or from user_data for older subscriptions.
func coopClaim(m *Member) (map[string][]int32, int32) {
	gen := m.Generation
	if gen < 0 {
		gen = generationFromUserData(m.UserData)
	}
	return m.Owned, gen
}
