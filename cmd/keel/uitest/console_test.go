package uitest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
	"github.com/keel-go/keel/keeltest"
)

// console is the ui server, served on loopback in front of a keeltest
// cluster, as `keel ui` serves it.
type console struct {
	t       *testing.T
	cluster *keeltest.Cluster
	client  *keel.Client
	admin   *admin.Admin
	url     string
}

func newConsole(t *testing.T, cfg ui.Config, opts ...keeltest.Option) *console {
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
	srv, err := ui.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv) // 127.0.0.1
	srv.RestrictHosts(hs.Listener.Addr())
	t.Cleanup(func() {
		hs.CloseClientConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx) // ends live streams first, so hs.Close need not wait for them
		hs.Close()
		_ = client.Close(ctx)
	})
	return &console{t: t, cluster: cluster, client: client, admin: adm, url: hs.URL}
}

func (c *console) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c.t.Cleanup(cancel)
	return ctx
}

func (c *console) createTopic(name string, partitions int32) {
	c.t.Helper()
	if err := c.admin.CreateTopics(c.ctx(), admin.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: -1}); err != nil {
		c.t.Fatal(err)
	}
}

// produce writes records (to the partition each names) and waits for them.
func (c *console) produce(msgs ...*keel.Message) []keel.Delivery {
	c.t.Helper()
	p, err := keel.NewProducer(c.client, keel.ManualPartitioner())
	if err != nil {
		c.t.Fatal(err)
	}
	defer p.Close(context.Background())
	ds, err := p.SendAll(c.ctx(), msgs...)
	if err != nil {
		c.t.Fatal(err)
	}
	return ds
}
