package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
	"go.uber.org/goleak"
)

// fixture is a console served by httptest in front of a keeltest cluster.
type fixture struct {
	t       *testing.T
	cluster *keeltest.Cluster
	client  *keel.Client
	admin   *admin.Admin
	srv     *httptest.Server
	token   string
}

func newFixture(t *testing.T, cfg Config, opts ...keeltest.Option) *fixture {
	t.Helper()
	cluster := keeltest.NewCluster(t, append([]keeltest.Option{keeltest.Brokers(1)}, opts...)...)
	client, err := keel.NewClient(keel.SeedBrokers(cluster.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	adm, err := admin.New(client)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client = client
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	f := &fixture{t: t, cluster: cluster, client: client, admin: adm, srv: srv, token: cfg.Token}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
		_ = client.Close(ctx)
	})
	return f
}

// call makes an API call and decodes the JSON answer into out (when not
// nil); it returns the status and the raw body.
func (f *fixture) call(method, path string, body any, out any) (int, []byte) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json") // as the page sends it; see crosssite.go
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			f.t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return res.StatusCode, raw
}

// mustOK is call that fails the test unless the answer is 200.
func (f *fixture) mustOK(method, path string, body any, out any) {
	f.t.Helper()
	if code, raw := f.call(method, path, body, out); code != http.StatusOK {
		f.t.Fatalf("%s %s: status %d: %s", method, path, code, raw)
	}
}

// produce writes records and waits for their reports.
func (f *fixture) produce(msgs ...*keel.Message) []keel.Delivery {
	f.t.Helper()
	p, err := keel.NewProducer(f.client, keel.ManualPartitioner())
	if err != nil {
		f.t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ds, err := p.SendAll(ctx, msgs...)
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

func (f *fixture) createTopic(name string, partitions int32) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.admin.CreateTopics(ctx, admin.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: -1}); err != nil {
		f.t.Fatal(err)
	}
}

func ctx20(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestMain checks that no test leaves goroutines behind: tails, page
// readers and producers all end with the server (goleak retries for a
// while, which covers kfake's own asynchronous shutdown).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
