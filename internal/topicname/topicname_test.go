package topicname

import (
	"errors"
	"strings"
	"testing"

	"github.com/keel-go/keel/internal/errs"
)

func TestValidate(t *testing.T) {
	good := []string{"orders", "a", "A.b_c-9", strings.Repeat("x", MaxLen), "...", "_"}
	for _, n := range good {
		if err := Validate(n); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", n, err)
		}
	}
	bad := map[string]string{
		"":                            "empty",
		".":                           "reserved",
		"..":                          "reserved",
		"bad/topic":                   `'/'`,
		"with space":                  `' '`,
		"ünicode":                     "byte 0",
		strings.Repeat("x", MaxLen+1): "250 characters",
		"tab\t":                       `'\t'`,
	}
	for n, want := range bad {
		err := Validate(n)
		if err == nil {
			t.Errorf("Validate(%q) = nil, want an error", n)
			continue
		}
		if !errors.Is(err, errs.ErrInvalidTopic) {
			t.Errorf("Validate(%q) = %v, does not match ErrInvalidTopic", n, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%q) = %q, want it to mention %s", n, err, want)
		}
	}
}
