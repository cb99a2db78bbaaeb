package keel

import "github.com/keel-go/keel/internal/clientlink"

// The admin and retry packages reach a Client's pool and metadata through
// clientlink; see that package for why this is not a public method.
func init() {
	clientlink.Register(func(client any) (clientlink.Internals, bool) {
		c, ok := client.(*Client)
		if !ok || c == nil {
			return clientlink.Internals{}, false
		}
		return clientlink.Internals{Pool: c.pool, Meta: c.meta, Logger: c.logger}, true
	})
}
