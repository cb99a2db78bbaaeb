package meta

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel/internal/conn"
)

// Close while producers call RefreshSoon (a client closed under a busy
// producer, as TestExactlyOnceRunUnderFaults kills members): a refresh
// started after Close began added to the WaitGroup Close was waiting on,
// which the race detector reports. Run with -race.
func TestCloseRacesRefreshSoon(t *testing.T) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("no broker in this test")
	}
	cfg := &conn.Config{ClientID: "meta-test", DialTimeout: time.Second, RequestTimeout: time.Second, Dial: dial}
	for range 20 {
		pool := conn.NewPool(cfg, conn.Backoff{Min: time.Millisecond, Max: time.Millisecond}, 0)
		m := New(Config{Seeds: []string{"127.0.0.1:1"}, MaxAge: time.Minute, Backoff: conn.Backoff{Min: time.Millisecond, Max: time.Millisecond}}, pool)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						m.RefreshSoon()
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		m.Close()
		close(stop)
		wg.Wait()
		pool.Close()
	}
}
