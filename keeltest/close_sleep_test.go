package keeltest

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A cluster closed while a request sleeps in a control (HoldRequests, a
// control's own SleepControl) must leave no goroutine behind. kfake's
// SleepControl returns early once the cluster is dying; the control then
// finishes and takes kfake's control lock for a run loop that may still
// pick the sleeper's wake-up and block on that lock for good (seen in CI:
// a run loop stuck in continueSleptControl). The race is lost only now and
// then, so each case runs many rounds, and after each round every kfake
// goroutine of that cluster must end.
func TestCloseWithSleepingControlLeavesNoGoroutine(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	cases := []struct {
		name  string
		sleep func(c *Cluster) (ready func())
	}{
		{"held request", func(c *Cluster) func() {
			h := c.HoldRequests(kmsg.ApiVersions)
			return func() {
				if err := h.Wait(testCtx(t), 1); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"held request resumed just before Close", func(c *Cluster) func() {
			h := c.HoldRequests(kmsg.ApiVersions)
			return func() {
				if err := h.Wait(testCtx(t), 1); err != nil {
					t.Fatal(err)
				}
				h.Resume()
			}
		}},
		{"control asleep", func(c *Cluster) func() {
			asleep := make(chan struct{}, 1)
			c.Control(kmsg.ApiVersions, func(kmsg.Request) (kmsg.Response, error, bool) {
				c.SleepControl(func() {
					asleep <- struct{}{}
					time.Sleep(time.Millisecond)
				})
				return nil, nil, false
			})
			return func() {
				select {
				case <-asleep:
				case <-testCtx(t).Done():
					t.Fatal("the control never slept")
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for round := range rounds {
				before := kfakeRunLoops()
				c, err := Start(Brokers(1))
				if err != nil {
					t.Fatal(err)
				}
				ready := tc.sleep(c)
				r := dialRaw(t, c.Addr())
				r.send(kmsg.NewPtrApiVersionsRequest())
				ready()
				c.Close()
				r.conn.Close()
				if left := waitRunLoopsGone(before, testTimeout); left != "" {
					t.Fatalf("round %d: a closed cluster's run loop did not end:\n%s", round, left)
				}
			}
		})
	}
}

// kfakeRunLoops returns the stacks of kfake run loops now running, by
// goroutine header.
func kfakeRunLoops() map[string]string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	loops := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if !bytes.Contains(g, []byte("kfake.(*Cluster).run(")) {
			continue
		}
		header, _, _ := bytes.Cut(g, []byte(" ["))
		loops[string(header)] = string(g)
	}
	return loops
}

// waitRunLoopsGone waits up to limit for every run loop not in before to
// end, and returns the stack of one that did not ("" if all ended).
func waitRunLoopsGone(before map[string]string, limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		left := ""
		for id, stack := range kfakeRunLoops() {
			if _, ok := before[id]; !ok {
				left = stack
				break
			}
		}
		if left == "" || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}
