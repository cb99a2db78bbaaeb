// Package testhook holds the few seams keel's tests outside the root
// package (integration/, its own module) need to reach a state the
// protocol only passes through for a moment. Each hook is nil in
// production and costs one atomic load where it is read; none is on a
// per-record path.
package testhook

import "sync/atomic"

// Membership is what an ExactlyOnce commit learns from its group member.
type Membership struct {
	Group      string
	Generation int32
	MemberID   string
}

// EOSMembership, when set, may rewrite the membership an ExactlyOnce
// commit is about to use: a test makes it "between generations" (-1, no
// member id), which a member is only for a moment after being expelled
// and before it rejoins. Tests key on Group so others running in the same
// process are not touched.
var EOSMembership atomic.Pointer[func(Membership) Membership]
