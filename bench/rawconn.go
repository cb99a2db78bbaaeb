package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn is a bare Kafka connection for the wire ceiling and the prefill:
// requests go out as encoded bytes, responses come back in order. It uses
// request versions with non-flexible headers (Produce v8, Fetch v11), so a
// response is its correlation id followed by the body.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
	f *kmsg.RequestFormatter
}

func dialRaw(ctx context.Context, addr string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 1<<20), f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench-ceiling"))}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return rc, nil
}

// encode is a complete request, ready to be written any number of times
// (the broker echoes the correlation id; responses come in order).
func (c *rawConn) encode(req kmsg.Request) []byte {
	return c.f.AppendRequest(nil, req, 1)
}

func (c *rawConn) write(b []byte) error {
	_, err := c.c.Write(b)
	return err
}

// read reads one response into resp (whose version must be set).
func (c *rawConn) read(buf []byte, resp kmsg.Response) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return buf, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 4 || n > 1<<30 {
		return buf, fmt.Errorf("response size %d", n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return buf, err
	}
	return buf, resp.ReadFrom(buf[4:]) // after the correlation id
}

// roundTrip writes req and reads its response.
func (c *rawConn) roundTrip(req kmsg.Request, resp kmsg.Response) error {
	if err := c.write(c.encode(req)); err != nil {
		return err
	}
	_, err := c.read(nil, resp)
	return err
}

func (c *rawConn) close() { c.c.Close() }
