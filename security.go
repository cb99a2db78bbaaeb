package keel

import (
	"errors"

	"github.com/keel-go/keel/internal/errs"
)

// isAuthorizationFailure reports whether err is the broker refusing this
// client's principal (topic, group or cluster ACLs). Retrying cannot fix
// it; the consumer reports it instead of fetching again forever.
func isAuthorizationFailure(err error) bool {
	var ke *errs.Error
	if !errors.As(err, &ke) {
		return false
	}
	switch ke.Code {
	case errs.CodeTopicAuthorizationFailed, errs.CodeGroupAuthorizationFailed, errs.CodeClusterAuthorizationFailed:
		return true
	}
	return false
}

// failMember ends the group membership with err, which Run and Poll then
// return: a failure no retry can fix, such as a topic the principal may
// not read. The member stops as it does when it is fenced; Close still
// commits what was processed and leaves the group.
func (c *memberCore) failMember(err error) {
	c.mu.Lock()
	if c.memberErr == nil {
		c.memberErr = err
	}
	c.mu.Unlock()
	c.stopMember()
}
