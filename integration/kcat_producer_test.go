package integration

import (
	"os/exec"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

func TestKcatExplore(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.Compression(keel.Zstd, 0))
	ctx := testCtx(t, 20*time.Second)
	msgs := []*keel.Message{
		{Topic: "t", Key: nil, Value: nil},
		{Topic: "t", Key: []byte{}, Value: []byte{}},
		{Topic: "t", Key: []byte("a\x00b\n"), Value: []byte("v\xff\x00\n"), Headers: []keel.Header{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: []byte{}}, {Key: "h3", Value: nil}}},
	}
	if _, err := p.SendAll(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-C", "-b", cl.Addr(), "-t", "t", "-e", "-q", "-f", "[%p %o %K %S %T]%k|%s|%h|\n"},
		{"-C", "-b", cl.Addr(), "-t", "t", "-e", "-q", "-J"},
	} {
		out, err := exec.CommandContext(ctx, "kcat", args...).CombinedOutput()
		t.Logf("%v err=%v\n%q", args, err, out)
	}
}
