package admin

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
)

// ClusterDescription is the cluster as DescribeCluster (or, from brokers
// older than Kafka 2.8, Metadata) shows it.
type ClusterDescription struct {
	ClusterID  string
	Controller int32 // broker id; -1 when the cluster reports none
	Brokers    []BrokerDescription
}

// BrokerDescription is one broker and the API versions it offers.
type BrokerDescription struct {
	ID   int32
	Host string
	Port int32
	Rack string // "" when not set
	// APIs is what the broker answered to ApiVersions, sorted by key.
	APIs []APIVersions
	// Err is why the broker's API versions could not be read (it is
	// unreachable, say); the rest of the description still holds.
	Err error
}

// APIVersions is the range of versions a broker offers for one API, and
// the version keel uses with it.
type APIVersions struct {
	Key      int16
	Name     string // e.g. "Produce"
	Min, Max int16
	Used     int16 // the version keel picked; -1 when keel does not use it with this broker
}

// DescribeCluster describes the cluster: its id, controller and brokers,
// and asks every broker which API versions it offers (one ApiVersions per
// broker, concurrently). A broker that cannot be asked is listed with Err
// set rather than failing the whole description.
func (a *Admin) DescribeCluster(ctx context.Context) (ClusterDescription, error) {
	if ctx == nil {
		return ClusterDescription{}, errs.NilContext("admin.Admin.DescribeCluster")
	}
	d, err := a.describeClusterRequest(ctx)
	if err != nil {
		return ClusterDescription{}, err
	}
	var wg sync.WaitGroup
	for i := range d.Brokers {
		b := &d.Brokers[i]
		wg.Go(func() { b.APIs, b.Err = a.apiVersionsOf(ctx, fmt.Sprintf("%s:%d", b.Host, b.Port)) })
	}
	wg.Wait()
	slices.SortFunc(d.Brokers, func(x, y BrokerDescription) int { return int(x.ID) - int(y.ID) })
	return d, nil
}

// describeClusterRequest sends DescribeCluster to any broker; brokers that
// do not speak it (before Kafka 2.8) are described from fresh metadata.
func (a *Admin) describeClusterRequest(ctx context.Context) (ClusterDescription, error) {
	s, err := a.meta.Refresh(ctx)
	if err != nil {
		return ClusterDescription{}, err
	}
	fromMeta := ClusterDescription{ClusterID: s.ClusterID, Controller: s.ControllerID}
	for _, b := range s.Brokers {
		fromMeta.Brokers = append(fromMeta.Brokers, BrokerDescription{ID: b.ID, Host: b.Host, Port: b.Port, Rack: b.Rack})
	}
	r := a.newRetry()
	for {
		var last error
		kresp, addr, err := a.anyBrokerWith(ctx, int16(kmsg.DescribeCluster), kmsg.NewPtrDescribeClusterRequest())
		switch {
		case err == errNoBrokerSpeaks:
			return fromMeta, nil
		case err != nil && !retriable(ctx, err):
			return ClusterDescription{}, err
		case err != nil:
			last = err
		default:
			resp := kresp.(*kmsg.DescribeClusterResponse)
			if resp.ErrorCode == errs.CodeNone {
				d := ClusterDescription{ClusterID: resp.ClusterID, Controller: resp.ControllerID}
				for _, b := range resp.Brokers {
					bd := BrokerDescription{ID: b.NodeID, Host: b.Host, Port: b.Port}
					if b.Rack != nil {
						bd.Rack = *b.Rack
					}
					d.Brokers = append(d.Brokers, bd)
				}
				return d, nil
			}
			e := codeErr(resp.ErrorCode, addr, resp.ErrorMessage, "describing the cluster")
			if !e.Retriable {
				return ClusterDescription{}, e
			}
			last = e
		}
		if err := r.wait(ctx, last); err != nil {
			return ClusterDescription{}, fmt.Errorf("describing the cluster: %w", err)
		}
	}
}

// errNoBrokerSpeaks: no broker offers the API asked for.
var errNoBrokerSpeaks = &errs.Error{Detail: "no broker offers this API", Err: errs.ErrUnsupportedBroker}

// anyBrokerWith is anyBroker for an API not every broker version offers:
// it asks the first broker that offers key, and answers errNoBrokerSpeaks
// when none does.
func (a *Admin) anyBrokerWith(ctx context.Context, key int16, req kmsg.Request) (kmsg.Response, string, error) {
	s, err := a.meta.Snapshot(ctx)
	if err != nil {
		return nil, "", err
	}
	ids := make([]int32, 0, len(s.Brokers))
	for id := range s.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var last error = errNoBrokerSpeaks
	for _, id := range ids {
		addr := s.Brokers[id].Addr()
		c, err := a.pool.Get(ctx, addr, conn.General)
		if err != nil {
			last = err
			if !retriable(ctx, err) {
				break
			}
			continue
		}
		if c.Versions().Version(key) < 0 {
			continue
		}
		resp, err := c.Request(ctx, req)
		if err == nil {
			return resp, addr, nil
		}
		last = err
		if !retriable(ctx, err) {
			break
		}
	}
	return nil, "", last
}

// apiVersionsOf asks the broker at addr which API versions it offers.
func (a *Admin) apiVersionsOf(ctx context.Context, addr string) ([]APIVersions, error) {
	c, err := a.pool.Get(ctx, addr, conn.General)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName = "keel"
	req.ClientSoftwareVersion = "dev"
	kresp, err := c.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != errs.CodeNone {
		return nil, codeErr(resp.ErrorCode, addr, nil, "asking the broker for its API versions")
	}
	out := make([]APIVersions, 0, len(resp.ApiKeys))
	for _, k := range resp.ApiKeys {
		name := kmsg.NameForKey(k.ApiKey)
		if name == "Unknown" || name == "" {
			name = fmt.Sprintf("key %d", k.ApiKey)
		}
		out = append(out, APIVersions{Key: k.ApiKey, Name: name, Min: k.MinVersion, Max: k.MaxVersion, Used: c.Versions().Version(k.ApiKey)})
	}
	slices.SortFunc(out, func(x, y APIVersions) int { return int(x.Key) - int(y.Key) })
	return out, nil
}
