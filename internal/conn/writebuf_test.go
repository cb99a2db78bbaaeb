package conn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The write buffer survives back-to-back large requests of varying size
// (produce), and a large buffer is dropped only after a run of requests
// that use little of it.
func TestWriteBufferKeptForLargeRequests(t *testing.T) {
	c := &Conn{}
	write := func(n int) {
		if cap(c.wbuf) < n {
			c.wbuf = make([]byte, 0, n)
		}
		c.wbuf = c.wbuf[:n]
		c.keepOrDropWriteBuffer()
	}
	write(8 << 20)
	big := cap(c.wbuf)
	for _, n := range []int{3 << 20, 6 << 20, 2<<20 + 1, 8 << 20} {
		write(n)
		if cap(c.wbuf) != big {
			t.Fatalf("a %d-byte request dropped the %d-byte write buffer", n, big)
		}
	}
	for i := range dropWriteBufferAfter - 1 {
		write(100)
		if cap(c.wbuf) != big {
			t.Fatalf("small request %d dropped the buffer; want it kept until %d in a row", i+1, dropWriteBufferAfter)
		}
	}
	write(100)
	if c.wbuf != nil {
		t.Fatalf("after %d small requests in a row the %d-byte buffer is still kept", dropWriteBufferAfter, big)
	}
	// Buffers up to keepWriteBuffer are always kept.
	write(keepWriteBuffer)
	for range 2 * dropWriteBufferAfter {
		write(10)
	}
	if cap(c.wbuf) != keepWriteBuffer {
		t.Fatalf("a buffer of %d bytes (the size always kept) was dropped", keepWriteBuffer)
	}
}

// fakeSegmented is a request whose Records-like payload is referenced: a
// Metadata request whose topic names are written through Ref.
type fakeSegmented struct {
	*kmsg.MetadataRequest
	name []byte
}

func (f fakeSegmented) AppendSegments(s *Segments) {
	// What kmsg writes for a v4 Metadata request with one topic named
	// f.name: array len 1, string len, the name, allow auto create.
	s.Buf = append(s.Buf, 0, 0, 0, 1, 0, byte(len(f.name)))
	s.Ref(f.name)
	s.Buf = append(s.Buf, 1)
}

// A Segmented request goes on the wire exactly as the formatter writes the
// same request in one piece: header, length prefix counting the referenced
// bytes, body.
func TestSegmentedRequestWrittenAsOnePiece(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := &Conn{
		addr:    "pipe",
		cfg:     &Config{RequestTimeout: 5 * time.Second},
		nc:      client,
		format:  kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")),
		pending: make(map[int32]*call),
		dead:    make(chan struct{}),
	}
	name := []byte("a-topic-name-long-enough-to-matter")
	topic := string(name)
	plain := kmsg.NewPtrMetadataRequest()
	plain.Version = 4
	plain.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = &topic
	plain.Topics = append(plain.Topics, rt)
	want := kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, plain, 1)

	seg := fakeSegmented{kmsg.NewPtrMetadataRequest(), name}
	seg.Version = 4
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, len(want))
		_, err := io.ReadFull(server, buf)
		if err != nil {
			buf = nil
		}
		got <- buf
	}()
	if err := c.write(context.Background(), seg, &call{}, false); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("wire bytes differ\n got %x\nwant %x", b, want)
	}
	for _, v := range c.wvec[:cap(c.wvec)] {
		if v != nil {
			t.Fatal("the connection kept a reference to a written request's bytes")
		}
	}
}

// A write that the broker does not take (it stopped reading) ends when the
// request's ctx ends, not at the request timeout (issue 18: Producer.Close
// overran its ctx that way); the connection is closed, since the request
// may have gone out in part. A later write's deadline is its own.
func TestBlockedWriteCutOffByCtx(t *testing.T) {
	client, server := net.Pipe() // nothing reads server: every write blocks
	defer client.Close()
	defer server.Close()
	c := &Conn{
		addr:    "pipe",
		cfg:     &Config{RequestTimeout: time.Minute},
		nc:      client,
		format:  kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")),
		pending: make(map[int32]*call),
		dead:    make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	seg := fakeSegmented{kmsg.NewPtrMetadataRequest(), make([]byte, 1<<20)}
	seg.Version = 4
	done := make(chan error, 1)
	go func() { done <- c.write(ctx, seg, &call{}, false) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the cut-off write says %v; want it to match the ctx's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked write outlived its ctx by 10s (the request timeout is 1m)")
	}
	select {
	case <-c.dead:
	default:
		t.Fatal("the connection stayed usable after a write was cut off midway")
	}
}
