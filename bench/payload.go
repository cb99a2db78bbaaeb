package main

import (
	"fmt"
	"math/rand/v2"
)

// payloads returns n distinct values of size bytes each, the same for
// every client and every run (fixed seed). They look like JSON events:
// field names and structure repeat, ids and a hex blob vary, so lz4 and
// zstd compress them to roughly a half to a third — neither the best case
// (identical values) nor the worst (random bytes).
func payloads(n, size int) [][]byte {
	rng := rand.New(rand.NewPCG(6, 2026))
	const hexdigits = "0123456789abcdef"
	words := []string{"click", "view", "purchase", "signup", "logout", "search"}
	out := make([][]byte, n)
	for i := range out {
		v := make([]byte, 0, size+64)
		v = fmt.Appendf(v, `{"id":%d,"user":"user-%05d","event":"%s","ok":true,"data":"`,
			rng.Uint64(), rng.IntN(50_000), words[rng.IntN(len(words))])
		for len(v) < size-2 {
			// Alternate random hex with repeated text, about half each.
			if rng.IntN(2) == 0 {
				for range 16 {
					v = append(v, hexdigits[rng.IntN(16)])
				}
			} else {
				v = append(v, words[rng.IntN(len(words))]...)
				v = append(v, "-event-payload-"...)
			}
		}
		v = append(v[:size-2], '"', '}')
		out[i] = v[:size:size]
	}
	return out
}
