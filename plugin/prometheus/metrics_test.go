package prometheus_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
	kprom "github.com/keel-go/keel/plugin/prometheus"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, cl *keeltest.Cluster, m *kprom.Metrics) *keel.Client {
	t.Helper()
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...), keel.WithHooks(m))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// produce sends counts[p] records to partition p of topic and waits for
// every report.
func produce(t *testing.T, ctx context.Context, c *keel.Client, topic string, counts []int) {
	t.Helper()
	p, err := keel.NewProducer(c, keel.ManualPartitioner())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for part, n := range counts {
		for i := range n {
			if _, err := p.Send(ctx, &keel.Message{Topic: topic, Partition: int32(part), Value: []byte(fmt.Sprint("v", i))}); err != nil {
				t.Fatalf("send to %s/%d: %v", topic, part, err)
			}
		}
	}
}

// scrape GETs the promhttp handler of reg, as Prometheus would.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sample finds one series' value in a text-format scrape; ok false when
// absent.
func sample(body, series string) (float64, bool) {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestScrapeCountsAndLag produces known counts per partition, consumes
// them with a handler that holds at offset `hold` of every partition, and
// checks a scrape: produced and consumed records exactly, handler calls
// exactly, and the committed-lag gauge equal to admin.Lag per partition.
func TestScrapeCountsAndLag(t *testing.T) {
	cl := keeltest.NewCluster(t, keeltest.Topic("orders", 3))
	ctx := testCtx(t, 2*time.Minute)
	reg := prometheus.NewRegistry()
	m, err := kprom.New(kprom.Registerer(reg), kprom.PartitionLabels())
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, cl, m)
	counts := []int{7, 10, 13}
	const hold = 4
	produce(t, ctx, c, "orders", counts)

	release := make(chan struct{})
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	defer unhold()
	g, err := keel.NewGroupConsumer(c, "metered", []string{"orders"},
		keel.SessionTimeout(6*time.Second), keel.HeartbeatInterval(200*time.Millisecond),
		keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(100*time.Millisecond),
		keel.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(runCtx, keel.HandlerFunc(func(ctx context.Context, msg *keel.Message) error {
			if msg.Offset >= hold {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil
		}))
	}()
	defer func() {
		unhold()
		stop()
		<-done
	}()

	a, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	var rows []admin.PartitionLag
	var body string
	match := func() bool {
		rows, err = a.Lag(ctx, "metered")
		if err != nil || len(rows) != len(counts) {
			return false
		}
		body = scrape(t, reg)
		for _, r := range rows {
			if r.Committed != hold {
				return false
			}
			v, ok := sample(body, fmt.Sprintf(`keel_consumer_committed_lag{group="metered",partition="%d",topic="orders"}`, r.Partition))
			if !ok || int64(v) != r.Lag {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !match() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !match() {
		t.Fatalf("committed lag never matched admin.Lag %+v (err %v); scrape:\n%s", rows, err, grep(body, "keel_consumer_"))
	}
	for _, r := range rows {
		if want := int64(counts[r.Partition] - hold); r.Lag != want {
			t.Errorf("admin lag of orders/%d = %d, want %d", r.Partition, r.Lag, want)
		}
		v, _ := sample(body, fmt.Sprintf(`keel_consumer_lag{group="metered",partition="%d",topic="orders"}`, r.Partition))
		if int64(v) != r.Lag {
			t.Errorf("keel_consumer_lag of orders/%d = %v, want %d (the handler holds where the commit is)", r.Partition, v, r.Lag)
		}
	}

	total := 0
	for _, n := range counts {
		total += n
	}
	if v, _ := sample(body, `keel_producer_records_total{outcome="delivered",topic="orders"}`); int(v) != total {
		t.Errorf("delivered records = %v, want %d", v, total)
	}
	// The failed outcomes' series exist from the topic's first record
	// (so alerts on them see 0, not absent) and must stay 0.
	for _, outcome := range []string{"not_written", "outcome_unknown"} {
		if v, ok := sample(body, fmt.Sprintf(`keel_producer_records_total{outcome=%q,topic="orders"}`, outcome)); !ok || v != 0 {
			t.Errorf("%s records = %v (present %v), want 0:\n%s", outcome, v, ok, grep(body, "keel_producer_records_total"))
		}
	}
	if v, _ := sample(body, `keel_producer_buffered_records{topic="orders"}`); v != 0 {
		t.Errorf("buffered records after every report = %v, want 0", v)
	}
	for p, n := range counts {
		if v, _ := sample(body, fmt.Sprintf(`keel_consumer_records_total{partition="%d",topic="orders"}`, p)); int(v) != n {
			t.Errorf("consumed records of orders/%d = %v, want %d", p, v, n)
		}
	}
	// Handler calls that returned: offsets below hold, on every partition.
	if v, _ := sample(body, `keel_handler_duration_seconds_count{group="metered",topic="orders"}`); int(v) != hold*len(counts) {
		t.Errorf("handler calls = %v, want %d", v, hold*len(counts))
	}
	if v, _ := sample(body, `keel_group_rebalances_total{group="metered",result="ok"}`); v < 1 {
		t.Errorf("rebalances = %v, want at least 1", v)
	}
	if v, _ := sample(body, `keel_commits_total{group="metered",result="ok"}`); v < 1 {
		t.Errorf("commits = %v, want at least 1", v)
	}
	if !strings.Contains(body, "keel_broker_connects_total{") || !strings.Contains(body, `keel_broker_request_duration_seconds_count{api="Produce"`) {
		t.Errorf("broker metrics missing:\n%s", grep(body, "keel_broker_"))
	}
}

func grep(body, prefix string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// TestTwoClientsShareRegistry: a second New on one registry adopts the
// first's metrics (no collision error) and both clients add to them;
// with ConstLabels each gets its own series.
func TestTwoClientsShareRegistry(t *testing.T) {
	cl := keeltest.NewCluster(t, keeltest.Topic("t", 1))
	ctx := testCtx(t, time.Minute)

	shared := prometheus.NewRegistry()
	m1, err := kprom.New(kprom.Registerer(shared))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := kprom.New(kprom.Registerer(shared))
	if err != nil {
		t.Fatalf("second New on one registry: %v", err)
	}
	produce(t, ctx, newClient(t, cl, m1), "t", []int{3})
	produce(t, ctx, newClient(t, cl, m2), "t", []int{4})
	got := testutil.ToFloat64(mustCounter(t, shared, "keel_producer_records_total"))
	if got != 7 {
		t.Errorf("shared delivered = %v, want 7", got)
	}

	labelled := prometheus.NewRegistry()
	a, err := kprom.New(kprom.Registerer(labelled), kprom.ConstLabels(prometheus.Labels{"client": "a"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kprom.New(kprom.Registerer(labelled), kprom.ConstLabels(prometheus.Labels{"client": "b"}))
	if err != nil {
		t.Fatalf("second labelled New: %v", err)
	}
	produce(t, ctx, newClient(t, cl, a), "t", []int{2})
	produce(t, ctx, newClient(t, cl, b), "t", []int{5})
	body := scrape(t, labelled)
	for client, want := range map[string]float64{"a": 2, "b": 5} {
		if v, _ := sample(body, fmt.Sprintf(`keel_producer_records_total{client="%s",outcome="delivered",topic="t"}`, client)); v != want {
			t.Errorf("client %s delivered = %v, want %v", client, v, want)
		}
	}
	if n, err := testutil.GatherAndCount(labelled); err != nil || n == 0 {
		t.Errorf("gathering the labelled registry: %d series, %v", n, err)
	}
}

// mustCounter sums a counter family's series from reg.
func mustCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sum"})
	c.Add(sum)
	return c
}
