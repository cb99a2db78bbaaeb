package conn

import "github.com/keel-go/keel/internal/wait"

// Backoff is exponential with jitter; see wait.Backoff.
type Backoff = wait.Backoff
