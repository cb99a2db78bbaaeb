package conn

import (
	"encoding/binary"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Segmented is a request that carries large byte slices of its own, such
// as the record batches of a produce request. The connection writes those
// slices from where they are, in one writev with the rest of the request,
// instead of copying them into its write buffer: with 10 KB records that
// copy was a tenth of the producer's CPU time (issue 6).
type Segmented interface {
	kmsg.Request
	// AppendSegments appends the request's body, at its version, to
	// s.Buf, exactly as AppendTo would, except that it passes the large
	// slices to s.Ref instead of appending them.
	AppendSegments(s *Segments)
}

// Segments is a request being encoded: its bytes in Buf, except for the
// slices given to Ref, each of which belongs where Buf ended when Ref was
// called.
type Segments struct {
	Buf  []byte
	refs []segmentRef
}

type segmentRef struct {
	at int // offset in Buf
	b  []byte
}

// Ref places b at the current end of Buf, without copying it.
func (s *Segments) Ref(b []byte) {
	if len(b) > 0 {
		s.refs = append(s.refs, segmentRef{len(s.Buf), b})
	}
}

// refBytes is the length of the referenced slices.
func (s *Segments) refBytes() int {
	n := 0
	for _, r := range s.refs {
		n += len(r.b)
	}
	return n
}

// vector lists the request's bytes in order, into dst.
func (s *Segments) vector(dst net.Buffers) net.Buffers {
	prev := 0
	for _, r := range s.refs {
		if r.at > prev {
			dst = append(dst, s.Buf[prev:r.at])
		}
		dst = append(dst, r.b)
		prev = r.at
	}
	if len(s.Buf) > prev {
		dst = append(dst, s.Buf[prev:])
	}
	return dst
}

// reset forgets the referenced slices, which belong to the request.
func (s *Segments) reset() {
	clear(s.refs)
	s.refs = s.refs[:0]
	s.Buf = nil
}

// segmentedBody lets the request formatter write a Segmented request's
// header and inline bytes: its AppendTo is AppendSegments.
type segmentedBody struct {
	Segmented
	s *Segments
}

func (b segmentedBody) AppendTo(dst []byte) []byte {
	b.s.Buf = dst
	b.Segmented.AppendSegments(b.s)
	return b.s.Buf
}

// appendSegmented encodes req with its header into c.seg (whose Buf is
// c.wbuf) and returns the bytes to write, the length prefix counting the
// referenced slices too. Callers hold writeMu.
func (c *Conn) appendSegmented(req Segmented, corr int32) net.Buffers {
	c.seg.Buf = c.format.AppendRequest(c.wbuf[:0], segmentedBody{req, &c.seg}, corr)
	binary.BigEndian.PutUint32(c.seg.Buf, uint32(len(c.seg.Buf)-4+c.seg.refBytes()))
	c.wbuf = c.seg.Buf
	c.wvec = c.seg.vector(c.wvec[:0])
	return c.wvec
}

// Answered is implemented by requests that know whether Kafka answers
// them; a produce request with acks=0 gets no answer.
type Answered interface {
	ExpectsResponse() bool
}

func expectsResponse(req kmsg.Request) bool {
	switch r := req.(type) {
	case Answered:
		return r.ExpectsResponse()
	case *kmsg.ProduceRequest:
		return r.Acks != 0
	}
	return true
}

// Bytes returns the encoded bytes in order, copied into one slice: what
// the connection writes (less the header), for checking an encoding.
func (s *Segments) Bytes() []byte {
	out := make([]byte, 0, len(s.Buf)+s.refBytes())
	for _, b := range s.vector(nil) {
		out = append(out, b...)
	}
	return out
}
