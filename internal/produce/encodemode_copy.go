//go:build keel_copy_at_produce

package produce

// encodeAtAppend: see encodemode.go. This build copies each record into
// its batch's builder at Produce, for measuring against encoding at send.
const encodeAtAppend = true
