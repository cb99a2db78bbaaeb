package keel

import "github.com/keel-go/keel/internal/topicname"

// ValidateTopicName checks name by the rule Kafka applies to topic names:
// 1 to 249 characters of a-z A-Z 0-9 . _ -, and neither "." nor "..". It
// returns nil for a legal name, or an error matching ErrInvalidTopic that
// says what is wrong. Producers, consumers, the admin package and the CLI
// all check names with it before sending anything, so a bad name gets the
// same answer whatever broker is on the other end.
func ValidateTopicName(name string) error { return topicname.Validate(name) }
