// Package topicname checks topic names by the rule the Kafka broker
// applies (org.apache.kafka.common.internals.Topic.validate): 1 to 249
// characters of [a-zA-Z0-9._-], and neither "." nor "..". Every part of
// keel that takes a topic name from a user checks it here, so that a bad
// name gets one clear error before anything is sent, whatever the broker
// would have said (a permissive broker accepts names Kafka refuses).
package topicname

import (
	"fmt"

	"github.com/keel-go/keel/internal/errs"
)

// MaxLen is the longest topic name Kafka accepts.
const MaxLen = 249

// Validate returns nil for a legal topic name, or an error matching
// errs.ErrInvalidTopic that says what is wrong and how to fix it.
func Validate(name string) error {
	problem := ""
	switch {
	case name == "":
		problem = "the name is empty"
	case name == "." || name == "..":
		problem = fmt.Sprintf("%q is reserved", name)
	case len(name) > MaxLen:
		problem = fmt.Sprintf("the name is %d characters long, over Kafka's limit of %d", len(name), MaxLen)
	default:
		for i := 0; i < len(name); i++ {
			if !legal(name[i]) {
				problem = fmt.Sprintf("it contains %q at byte %d", name[i], i)
				break
			}
		}
	}
	if problem == "" {
		return nil
	}
	shown := name
	if len(shown) > 60 {
		shown = shown[:57] + "..."
	}
	return &errs.Error{
		Code:   errs.CodeInvalidTopicException,
		Name:   errs.Lookup(errs.CodeInvalidTopicException).Name,
		Detail: fmt.Sprintf("topic name %q is not a legal Kafka topic name: %s (use 1 to %d of the characters a-z A-Z 0-9 . _ -, and not \".\" or \"..\")", shown, problem, MaxLen),
		Err:    errs.ErrInvalidTopic,
	}
}

func legal(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
