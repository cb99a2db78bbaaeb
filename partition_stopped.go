package keel

// partitionStopped reports that a group consumer's partition stopped on a
// fetch error (an offset out of range under ResetNone, corrupt data, a
// refused read): logged at Error, and an ErrorEvent on the Events() of the
// client's producers, so that a program watching events learns its
// partition is no longer read without scraping logs. A failure no retry
// can fix (authorization) also ends the membership: Run returns it.
// Called under the lane's lock; emit does not block.
func (c *memberCore) partitionStopped(tp TopicPartition, err error) {
	c.client.logger.Error("keel: partition stopped: cannot read it (Seek restarts it)", "group", c.group, "partition", tp, "err", err)
	c.client.events.emit(ErrorEvent{Err: err})
	if isAuthorizationFailure(err) {
		c.failMember(err) // Run returns it (security.go)
	}
}
