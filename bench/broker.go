package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// The broker is kfake, franz-go's in-memory Kafka, in a process of its own
// so that its CPU time, memory and garbage collection are not charged to
// the client measured. The harness starts one per measurement (a fresh
// topic every time) and stops it by closing its stdin.

// brokerStats is what a broker process prints when it stops.
type brokerStats struct {
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

// runBroker is the broker role: start kfake on a free loopback port, print
// "listening <addr>", serve until stdin closes, print brokerStats.
func runBroker(topic string, brokers, partitions int, blackhole bool) error {
	var in, out atomic.Int64
	opts := []kfake.Opt{
		kfake.NumBrokers(max(1, brokers)),
		kfake.SeedTopics(int32(partitions), topic),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			return &countingListener{Listener: ln, in: &in, out: &out}, nil
		}),
	}
	if blackhole {
		// Produce workloads: kfake still checks every batch (CRC,
		// sequence numbers) and assigns offsets, but does not keep the
		// records, so 1 GB workloads do not fill the broker's memory and
		// its storage cost stays out of the client's numbers.
		opts = append(opts, kfake.BlackholeProduce())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	if len(addrs) != max(1, brokers) {
		return fmt.Errorf("kfake listens on %d addresses, want %d", len(addrs), max(1, brokers))
	}
	fmt.Printf("listening %s\n", strings.Join(addrs, ","))
	io.Copy(io.Discard, os.Stdin) // until the harness closes our stdin
	return json.NewEncoder(os.Stdout).Encode(brokerStats{BytesIn: in.Load(), BytesOut: out.Load()})
}

type countingListener struct {
	net.Listener
	in, out *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, in: l.in, out: l.out}, nil
}

type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// brokerProc is the harness's handle on a running broker process.
type brokerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	addr  string // every broker's address, comma-separated
}

// startBroker starts a broker process with one topic and waits (bounded by
// ctx) for its address.
func startBroker(ctx context.Context, self, topic string, brokers, partitions int, blackhole bool) (*brokerProc, error) {
	args := []string{"-role=broker", "-topic=" + topic, fmt.Sprintf("-partitions=%d", partitions), fmt.Sprintf("-brokers=%d", brokers)}
	if blackhole {
		args = append(args, "-blackhole")
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the broker process: %w", err)
	}
	b := &brokerProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	lineCh := make(chan string, 1)
	go func() {
		line, _ := b.out.ReadString('\n')
		lineCh <- line
	}()
	select {
	case line := <-lineCh:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if !ok {
			b.kill()
			return nil, fmt.Errorf("broker process said %q instead of its address", line)
		}
		b.addr = addr
	case <-ctx.Done():
		b.kill()
		return nil, fmt.Errorf("broker process did not start: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		b.kill()
		return nil, errors.New("broker process did not print its address within 30s")
	}
	return b, nil
}

// stop asks the broker to exit and returns its byte counts.
func (b *brokerProc) stop() (brokerStats, error) {
	var st brokerStats
	b.stdin.Close()
	lineCh := make(chan string, 1)
	go func() {
		line, _ := b.out.ReadString('\n')
		lineCh <- line
	}()
	select {
	case line := <-lineCh:
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			b.kill()
			return st, fmt.Errorf("broker stats %q: %w", line, err)
		}
	case <-time.After(30 * time.Second):
		b.kill()
		return st, errors.New("broker process did not stop within 30s")
	}
	return st, b.cmd.Wait()
}

// cpuSeconds is the broker process's CPU time so far (user+sys, every
// thread) from /proc, 0 when it cannot be read. The harness reads it
// around a client's run: kfake serves every broker of a cluster from one
// goroutine, so a client can be bounded by the broker's core rather than
// its own, and this says which.
func (b *brokerProc) cpuSeconds() float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its end.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	const ticks = 100                           // USER_HZ on Linux
	return float64(utime+stime) / ticks
}

func (b *brokerProc) kill() {
	b.cmd.Process.Kill()
	b.cmd.Wait()
}
