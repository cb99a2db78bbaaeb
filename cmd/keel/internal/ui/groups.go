package ui

import (
	"context"
	"net/http"
	"strings"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// maxGroupsWithLag bounds the lag lookups of the groups list (one
// OffsetFetch and the end offsets of its topics per group); past it the
// list shows the lag as unknown and the group page has it.
const maxGroupsWithLag = 200

type groupRowJSON struct {
	Group    string `json:"group"`
	State    string `json:"state"`
	Protocol string `json:"protocol"` // the assignor, e.g. cooperative-sticky
	Type     string `json:"type"`     // consumer, or "" for groups that only commit offsets
	Members  int    `json:"members"`
	Lag      int64  `json:"lag"` // total over partitions; -1 when unknown
}

func (s *Server) listGroups(ctx context.Context, r *http.Request) (any, error) {
	listed, err := s.admin.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]groupRowJSON, 0, len(listed))
	if len(listed) == 0 {
		return rows, nil
	}
	names := make([]string, len(listed))
	for i, g := range listed {
		names[i] = g.Group
	}
	descs, err := s.admin.DescribeGroups(ctx, names...)
	if err != nil {
		return nil, err
	}
	for i, d := range descs {
		row := groupRowJSON{Group: d.Group, State: d.State, Protocol: d.Protocol, Type: d.ProtocolType, Members: len(d.Members), Lag: -1}
		if i < maxGroupsWithLag {
			if lag, err := s.admin.Lag(ctx, d.Group); err == nil {
				row.Lag = totalLag(lag)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func totalLag(rows []admin.PartitionLag) int64 {
	var n int64
	for _, l := range rows {
		if l.Lag > 0 {
			n += l.Lag
		}
	}
	return n
}

type groupJSON struct {
	Group    string       `json:"group"`
	State    string       `json:"state"`
	Protocol string       `json:"protocol"`
	Type     string       `json:"type"`
	Coord    int32        `json:"coordinator"`
	Members  []memberJSON `json:"members"`
	Lag      []lagJSON    `json:"lag"`
	Total    int64        `json:"totalLag"`
}

type memberJSON struct {
	MemberID   string   `json:"memberId"`
	InstanceID string   `json:"instanceId,omitempty"`
	ClientID   string   `json:"clientId"`
	Host       string   `json:"host"`
	Assigned   []tpJSON `json:"assigned"`
}

type tpJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

type lagJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: no commit
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	NoCommit  bool   `json:"noCommit"`
	ClientID  string `json:"clientId,omitempty"`
}

func groupParam(r *http.Request) (string, error) {
	g := r.PathValue("group")
	if strings.TrimSpace(g) == "" {
		return "", badRequest("name the group")
	}
	return g, nil
}

func (s *Server) getGroup(ctx context.Context, r *http.Request) (any, error) {
	name, err := groupParam(r)
	if err != nil {
		return nil, err
	}
	descs, err := s.admin.DescribeGroups(ctx, name)
	if err != nil {
		return nil, err
	}
	d := descs[0]
	lag, err := s.admin.Lag(ctx, name)
	if err != nil {
		return nil, err
	}
	out := groupJSON{Group: d.Group, State: d.State, Protocol: d.Protocol, Type: d.ProtocolType, Coord: d.Coordinator,
		Members: []memberJSON{}, Lag: []lagJSON{}, Total: totalLag(lag)}
	for _, m := range d.Members {
		mj := memberJSON{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.Host, Assigned: []tpJSON{}}
		for _, tp := range m.Assigned {
			mj.Assigned = append(mj.Assigned, tpJSON{Topic: tp.Topic, Partition: tp.Partition})
		}
		out.Members = append(out.Members, mj)
	}
	for _, l := range lag {
		out.Lag = append(out.Lag, lagJSON{Topic: l.Topic, Partition: l.Partition, Committed: l.Committed, Start: l.Start, End: l.End, Lag: l.Lag, NoCommit: l.NoCommit, ClientID: l.ClientID})
	}
	return out, nil
}

// resetJSON is a reset-offsets request: the same choices as `keel groups
// reset-offsets`. Without execute it only returns the plan.
type resetJSON struct {
	Topics    map[string][]int32 `json:"topics"`    // topic → partitions (empty: all)
	AllTopics bool               `json:"allTopics"` // every topic the group committed on
	To        string             `json:"to"`        // earliest, latest, offset, time, shift
	Offset    int64              `json:"offset"`    // for to=offset
	Time      string             `json:"time"`      // for to=time
	Shift     int64              `json:"shift"`     // for to=shift
	Execute   bool               `json:"execute"`
}

type planRowJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current"` // -1: no commit
	New       int64  `json:"new"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
}

func (s *Server) resetOffsets(ctx context.Context, r *http.Request) (any, error) {
	group, err := groupParam(r)
	if err != nil {
		return nil, err
	}
	var req resetJSON
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.Execute && s.cfg.ReadOnly {
		return nil, errReadOnly
	}
	if !req.AllTopics && len(req.Topics) == 0 {
		return nil, badRequest("say which partitions: topics {\"orders\": []} or allTopics true")
	}
	for t := range req.Topics {
		if err := keel.ValidateTopicName(t); err != nil {
			return nil, &apiError{status: http.StatusBadRequest, msg: "bad topic name", err: err}
		}
	}
	target, err := resetTarget(req)
	if err != nil {
		return nil, err
	}
	plan, err := s.admin.ResetOffsetsPlan(ctx, group, admin.ResetScope{Topics: req.Topics, AllTopics: req.AllTopics}, target)
	if err != nil {
		return nil, err
	}
	rows := make([]planRowJSON, 0, len(plan))
	offsets := make(map[keel.TopicPartition]int64, len(plan))
	for _, c := range plan {
		rows = append(rows, planRowJSON{Topic: c.Topic, Partition: c.Partition, Current: c.Current, New: c.New, Start: c.Start, End: c.End})
		offsets[keel.TopicPartition{Topic: c.Topic, Partition: c.Partition}] = c.New
	}
	if req.Execute && len(offsets) > 0 {
		if err := s.admin.AlterGroupOffsets(ctx, group, offsets); err != nil {
			return nil, err
		}
	}
	return map[string]any{"group": group, "target": target.String(), "executed": req.Execute && len(offsets) > 0, "plan": rows}, nil
}

func resetTarget(req resetJSON) (admin.OffsetTarget, error) {
	switch req.To {
	case "earliest":
		return admin.ToEarliest(), nil
	case "latest":
		return admin.ToLatest(), nil
	case "offset":
		if req.Offset < 0 {
			return admin.OffsetTarget{}, badRequest("offset %d: offsets are 0 or more", req.Offset)
		}
		return admin.ToOffset(req.Offset), nil
	case "time":
		t, err := parseTime(req.Time)
		if err != nil {
			return admin.OffsetTarget{}, err
		}
		return admin.ToTime(t), nil
	case "shift":
		return admin.ShiftBy(req.Shift), nil
	}
	return admin.OffsetTarget{}, badRequest("to=%q: use earliest, latest, offset, time or shift", req.To)
}
