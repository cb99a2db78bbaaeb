package fetch

import (
	"math"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
)

// sessionPart is what a fetch request says about one partition. The broker
// keeps the last one it was sent in its fetch session, so an incremental
// request carries a partition only when this changed.
type sessionPart struct {
	Offset      int64
	LeaderEpoch int32
	LastEpoch   int32 // leader epoch of the last batch before Offset (LastFetchedEpoch)
	MaxBytes    int32
}

// session is the client side of a KIP-227 fetch session with one broker.
// (id, epoch) follows the protocol:
//
//	(0, -1)  no session: every request is full (Fetch < v7)
//	(0, 0)   full request, create a session
//	(id, 0)  full request, close session id and create a new one
//	(id, n)  incremental request on session id (n > 0)
//
// acked is what the broker holds: the partitions of the last request it
// answered without a session error, as that request described them. A
// request in flight does not change it; only its answer does.
type session struct {
	disabled bool // the broker only speaks Fetch < v7
	id       int32
	epoch    int32
	acked    map[topicpart.TP]sessionPart
}

// sessionReq is the session part of one request.
type sessionReq struct {
	id, epoch int32
	full      bool
	send      []topicpart.TP // partitions to write into the request
	forget    []topicpart.TP // partitions to drop from the broker's session
	want      map[topicpart.TP]sessionPart
}

// build decides what the next request carries to make the broker fetch
// exactly want: everything on a full request; on an incremental one only
// partitions that are new or changed, and the ones to forget.
func (s *session) build(want map[topicpart.TP]sessionPart) sessionReq {
	r := sessionReq{id: s.id, epoch: s.epoch, want: want}
	if s.disabled {
		r.id, r.epoch = 0, -1
	}
	if r.epoch <= 0 {
		r.full = true
		for tp := range want {
			r.send = append(r.send, tp)
		}
		return r
	}
	for tp, p := range want {
		if old, ok := s.acked[tp]; !ok || old != p {
			r.send = append(r.send, tp)
		}
	}
	for tp := range s.acked {
		if _, ok := want[tp]; !ok {
			r.forget = append(r.forget, tp)
		}
	}
	return r
}

// answered records the broker's answer to r: its top-level error code and
// the session id it gave. With a top-level error the broker fetched
// nothing; the caller retries (session errors) or applies the code to
// every partition (others).
func (s *session) answered(r sessionReq, code int16, respID int32) {
	switch {
	case s.disabled:
		return
	case code == errs.CodeFetchSessionIdNotFound:
		// The broker evicted our session: start a new one from scratch.
		s.reset(0)
		return
	case code != errs.CodeNone:
		// INVALID_FETCH_SESSION_EPOCH or any other top-level error: we
		// cannot know what the broker holds. A full request naming our
		// id closes that session and opens a fresh one.
		s.reset(s.id)
		return
	}
	if r.full {
		if respID == 0 {
			// The broker made no session (none left, or it has them
			// off): keep asking with full requests.
			s.reset(0)
			return
		}
		s.id, s.epoch = respID, 1
	} else {
		s.epoch = nextEpoch(s.epoch)
	}
	s.acked = r.want
}

// failed records that r got no answer (connection lost, timeout): the
// broker may or may not have moved its epoch, so start over with a full
// request on the same id.
func (s *session) failed() { s.reset(s.id) }

func (s *session) reset(id int32) {
	s.id, s.epoch, s.acked = id, 0, nil
}

// nextEpoch increments a session epoch, wrapping to 1: 0 and -1 have
// meanings of their own.
func nextEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}
