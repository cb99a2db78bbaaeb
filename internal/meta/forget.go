package meta

// Forget stops asking for topics in metadata refreshes; the next refresh
// leaves them out of the snapshot. Call it after deleting topics: a deleted
// topic left in the interest set would be requested on every refresh, and
// re-created by brokers that auto-create topics.
func (m *Meta) Forget(topics ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range topics {
		delete(m.interest, t)
	}
}
