//go:build !keel_copy_at_produce

package produce

// encodeAtAppend is false: a batch is encoded from its records' own
// values when its sink sends it (the design since issue 11). Building with
// -tags keel_copy_at_produce encodes each record into its batch's builder
// when it is produced instead, as keel did before: that build exists only
// to measure the choice (docs/BENCHMARKS.md, "copy at Produce or encode
// at send").
const encodeAtAppend = false
