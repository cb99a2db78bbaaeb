package ui

import (
	"context"
	"net/http"
)

type overviewJSON struct {
	ClusterID  string       `json:"clusterId"`
	Controller int32        `json:"controller"`
	Brokers    []brokerJSON `json:"brokers"`
	Topics     int          `json:"topics"`
	Partitions int          `json:"partitions"`
	Internal   int          `json:"internalTopics"`
}

type brokerJSON struct {
	ID   int32  `json:"id"`
	Addr string `json:"addr"`
	Rack string `json:"rack,omitempty"`
}

func (s *Server) getOverview(ctx context.Context, r *http.Request) (any, error) {
	md, err := s.cfg.Client.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	out := overviewJSON{ClusterID: md.ClusterID, Controller: md.Controller, Brokers: []brokerJSON{}}
	for _, b := range md.Brokers {
		out.Brokers = append(out.Brokers, brokerJSON{ID: b.ID, Addr: b.Addr, Rack: b.Rack})
	}
	for _, t := range md.Topics {
		if t.Internal {
			out.Internal++
			continue
		}
		out.Topics++
		out.Partitions += len(t.Partitions)
	}
	return out, nil
}
