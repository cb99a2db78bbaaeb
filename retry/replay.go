package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// ReplayOptions says what Replay moves back.
type ReplayOptions struct {
	// DLT is the dead-letter topic to replay (required).
	DLT string
	// Group is the consumer group that records the replay's progress, so
	// that an interrupted replay resumes where it stopped. Default:
	// "keel-replay.<DLT>", with a hash of the filters appended when there
	// are any — a replay with other filters starts afresh instead of
	// skipping what an earlier, narrower one left behind. Required with
	// Filter (a function cannot be hashed). Pass it too when Since or
	// Until is computed from time.Now(): the default group is named after
	// their values, so every such run would be a new replay rather than a
	// resumed one.
	Group string
	// Topic sends every record there instead of to the topic named in its
	// HeaderOriginalTopic. Without it, a record lacking that header stops
	// the replay with an error (and stays unreplayed).
	Topic string
	// Since and Until keep records dead-lettered at or after Since and
	// before Until (the dead-letter record's timestamp); zero means no
	// bound.
	Since, Until time.Time
	// Keys keeps only records with one of these keys.
	Keys [][]byte
	// FailedBy keeps only records dead-lettered by this consumer group
	// (HeaderGroup), for a dead-letter topic several groups share.
	FailedBy string
	// Filter, when set, keeps only records for which it returns true.
	// Filter and OnReplay are called one at a time (never concurrently),
	// although the partitions are replayed in parallel.
	Filter func(m *keel.Message) bool
	// Max stops after this many records were replayed (0: no limit);
	// the rest stay for the next replay with the same group.
	Max int
	// Producer writes the replayed records; default: one made for the
	// replay (acks from all replicas, idempotent).
	Producer *keel.Producer
	// OnReplay is called after each record was replayed, with the
	// dead-letter record and the report of its copy; one call at a time.
	OnReplay func(from *keel.Message, to keel.Delivery)
	// GroupOptions are passed to the replay's GroupConsumer (except
	// OnAssigned and OnRevoked, which the replay sets itself).
	GroupOptions []keel.GroupOption
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Group    string // the consumer group that holds the replay's progress
	Replayed int    // records written back to their topic
	Skipped  int    // records the filters left out (committed past all the same)
	// Remaining is true when the replay stopped before the end it saw at
	// its start (Max reached, ctx ended, or an error).
	Remaining bool
}

// ErrReplayBusy: another member of the replay's group is active: a replay
// with the same group is running, or a killed one's session has not yet
// expired.
var ErrReplayBusy = errors.New("retry: replay group busy")

// replaySessionTimeout keeps the wait short after a killed replay before
// the same replay can be run again.
const replaySessionTimeout = 10 * time.Second

// Replay copies records from a dead-letter topic back to the topics they
// came from (HeaderOriginalTopic), with their key, value and own headers
// but none of the retry headers — so they start again at attempt 1 — plus
// HeaderReplayedFrom naming the dead-letter record. It reads the topic
// with a consumer group and commits as it goes, so that running it again
// after an interruption resumes rather than repeats; it stops at the end
// the topic had when it started. Records the filters leave out are
// passed over and committed too: replay them later under another group
// (the default group differs per filter set).
//
// Every record replayed was acknowledged by the broker first; a write
// that fails stops the replay with an error and leaves that record
// unreplayed for the next run. A record replayed just before an
// interruption whose commit did not happen is replayed again next time:
// replay is at least once.
func Replay(ctx context.Context, client *keel.Client, opts ReplayOptions) (ReplayResult, error) {
	if err := opts.validate(client); err != nil {
		return ReplayResult{}, err
	}
	res := ReplayResult{Group: opts.group()}
	adm, err := admin.New(client)
	if err != nil {
		return res, fmt.Errorf("retry: replay: %w", err)
	}
	if err := checkIdle(ctx, adm, res.Group); err != nil {
		return res, err
	}
	end, err := adm.EndOffsets(ctx, opts.DLT)
	if err != nil {
		return res, fmt.Errorf("retry: replay: reading the end of %s: %w", opts.DLT, err)
	}
	start, err := adm.StartOffsets(ctx, opts.DLT)
	if err != nil {
		return res, fmt.Errorf("retry: replay: reading the start of %s: %w", opts.DLT, err)
	}
	committed, err := adm.GroupOffsets(ctx, res.Group)
	if errors.Is(err, admin.ErrGroupNotFound) {
		committed, err = nil, nil // a first replay
	}
	if err != nil {
		return res, fmt.Errorf("retry: replay: reading the progress of group %s: %w", res.Group, err)
	}
	r := &replayer{opts: opts, end: end, left: make(map[int32]bool), done: make(chan struct{})}
	for tp, e := range end {
		if max(committed[tp], start[tp]) < e {
			r.left[tp.Partition] = true
		}
	}
	if len(r.left) == 0 {
		return res, nil // nothing (new) in the topic
	}
	prod := opts.Producer
	if prod == nil {
		if prod, err = keel.NewProducer(client); err != nil {
			return res, fmt.Errorf("retry: replay: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			prod.Close(cctx)
		}()
	}
	r.prod = prod
	gopts := append([]keel.GroupOption{
		keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(time.Second),
		keel.SessionTimeout(replaySessionTimeout), keel.HeartbeatInterval(time.Second),
	}, opts.GroupOptions...)
	gopts = append(gopts, keel.OnAssigned(r.assigned), keel.OnRevoked(r.revoked)) // last: they must not be overridden
	g, err := keel.NewGroupConsumer(client, res.Group, []string{opts.DLT}, gopts...)
	if err != nil {
		return res, fmt.Errorf("retry: replay: %w", err)
	}
	r.g = g
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runDone := make(chan error, 1)
	go func() { runDone <- g.Run(runCtx, keel.HandlerFunc(r.handle)) }()
	var runErr error
	select {
	case <-r.done:
	case <-ctx.Done():
	case runErr = <-runDone:
		runDone <- runErr
	}
	stop()
	<-runDone
	cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	closeErr := g.Close(cctx) // commits what was replayed or passed over

	r.mu.Lock()
	res.Replayed, res.Skipped, res.Remaining = r.replayed, r.skipped, len(r.left) > 0
	fatal := r.fatal
	r.mu.Unlock()
	var problems []error
	if fatal != nil {
		problems = append(problems, fatal)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		problems = append(problems, runErr)
	}
	if ctx.Err() != nil && res.Remaining && fatal == nil {
		problems = append(problems, ctx.Err())
	}
	if closeErr != nil {
		problems = append(problems, fmt.Errorf("committing the replay's progress: %w", closeErr))
	}
	if len(problems) > 0 {
		return res, fmt.Errorf("retry: replay of %s: %w", opts.DLT, errors.Join(problems...))
	}
	return res, nil
}

// replayer is one Replay's state, shared by the partitions' workers.
type replayer struct {
	opts ReplayOptions
	prod *keel.Producer
	g    *keel.GroupConsumer           // set before it runs
	end  map[keel.TopicPartition]int64 // the topic's end when the replay began

	// callbacks makes the user's Filter and OnReplay run one at a time:
	// the partitions' workers call them concurrently otherwise, and a
	// callback is naturally written as a loop body (a map, a counter).
	callbacks sync.Mutex

	mu       sync.Mutex
	left     map[int32]bool // partitions not yet read to their end
	replayed int
	reserved int // replays under way, counted against Max
	skipped  int
	fatal    error
	done     chan struct{} // closed when nothing is left or Max was reached
	closed   bool
}

func (r *replayer) handle(ctx context.Context, m *keel.Message) error {
	tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
	if m.Offset >= r.end[tp] {
		// Written after the replay began: not this replay's, but the
		// partition was read to its end (records before the end that we
		// never saw were control records or deleted by retention).
		r.mu.Lock()
		delete(r.left, m.Partition)
		if len(r.left) == 0 {
			r.finishLocked()
		}
		r.mu.Unlock()
		return r.hold(ctx)
	}
	if !r.keep(m) {
		r.mu.Lock()
		r.skipped++
		r.mu.Unlock()
		r.progress(m)
		return nil
	}
	dest := r.opts.Topic
	if dest == "" {
		info, _, _ := InfoOf(m)
		if info.OriginalTopic == m.Topic || info.OriginalTopic == "" {
			return r.fail(ctx, fmt.Errorf("record %s/%d@%d has no %s header, so its topic is unknown; pass a destination topic", m.Topic, m.Partition, m.Offset, HeaderOriginalTopic))
		}
		dest = info.OriginalTopic
	}
	r.mu.Lock()
	if r.opts.Max > 0 && r.replayed+r.reserved >= r.opts.Max {
		r.finishLocked()
		r.mu.Unlock()
		return r.hold(ctx)
	}
	r.reserved++
	r.mu.Unlock()

	out := &keel.Message{Topic: dest, Key: m.Key, Value: m.Value, Headers: append(stripOwn(m.Headers),
		header(HeaderReplayedFrom, m.Topic+"/"+strconv.Itoa(int(m.Partition))+"/"+strconv.FormatInt(m.Offset, 10)))}
	ch := make(chan keel.Delivery, 1)
	r.prod.Produce(ctx, out, ch)
	d := <-ch // every Produce gets exactly one report, within the delivery timeout
	r.mu.Lock()
	r.reserved--
	if d.Err == nil {
		r.replayed++
	}
	r.mu.Unlock()
	if d.Err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("retry: replay stopped: %w", context.Cause(ctx))
		}
		return r.fail(ctx, fmt.Errorf("writing %s/%d@%d back to %s: %w", m.Topic, m.Partition, m.Offset, dest, d.Err))
	}
	if r.opts.OnReplay != nil {
		r.callbacks.Lock()
		r.opts.OnReplay(m, d)
		r.callbacks.Unlock()
	}
	r.progress(m)
	return nil
}

// keep applies the filters, the user's one at a time.
func (r *replayer) keep(m *keel.Message) bool {
	if r.opts.Filter != nil {
		r.callbacks.Lock()
		defer r.callbacks.Unlock()
	}
	return r.opts.keep(m)
}

// progress notes that m was dealt with; the replay is done when every
// partition reached its end.
func (r *replayer) progress(m *keel.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Offset+1 >= r.end[keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}] {
		delete(r.left, m.Partition)
	}
	if len(r.left) == 0 {
		r.finishLocked()
	}
}

// assigned and revoked make a replay step back when it shares its group.
// A replay finishes only once every partition was read to its end, so two
// replays that split the partitions — started at the same moment, both
// found the group idle — would each wait for ever for the other's. Alone,
// a replay is assigned every partition at once and never loses one; with
// another member it is not, or it gives partitions up. It then stops with
// ErrReplayBusy, its progress committed, and a later run goes on.
func (r *replayer) assigned([]keel.TopicPartition) {
	if len(r.g.Assigned()) < len(r.end) {
		r.stepBack()
	}
}

func (r *replayer) revoked(tps []keel.TopicPartition) {
	if len(tps) > 0 {
		r.stepBack()
	}
}

func (r *replayer) stepBack() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return // finished (or failed) already
	}
	r.fatal = fmt.Errorf("%w: another replay joined group %s while this one ran; this one stopped, its progress kept: run it again once the other one finished",
		ErrReplayBusy, r.opts.group())
	r.finishLocked()
}

// fail stops the replay with err, leaving the current record unreplayed.
func (r *replayer) fail(ctx context.Context, err error) error {
	r.mu.Lock()
	if r.fatal == nil {
		r.fatal = err
	}
	r.finishLocked()
	r.mu.Unlock()
	return r.hold(ctx)
}

func (r *replayer) finishLocked() {
	if !r.closed {
		r.closed = true
		close(r.done)
	}
}

// hold keeps a record unprocessed until the replay stops (its handler ctx
// is then cancelled), so it is neither replayed nor committed.
func (r *replayer) hold(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("retry: replay stopped: %w", context.Cause(ctx))
}

func (o *ReplayOptions) validate(client *keel.Client) error {
	var problems []error
	bad := func(field, problem, fix string) {
		problems = append(problems, &keel.ConfigError{Option: "ReplayOptions." + field, Problem: problem, Fix: fix})
	}
	if client == nil {
		bad("client", "nil client", "pass the *keel.Client from keel.NewClient")
	}
	if err := validTopic(o.DLT); err != nil {
		bad("DLT", err.Error(), "name the dead-letter topic to replay, e.g. orders.dlt")
	}
	if o.Topic != "" {
		if err := validTopic(o.Topic); err != nil {
			bad("Topic", err.Error(), "name an existing topic, or leave it empty to use each record's origin")
		} else if o.Topic == o.DLT {
			bad("Topic", "the dead-letter topic itself", "replay to the topic the records came from")
		}
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && !o.Until.After(o.Since) {
		bad("Until", fmt.Sprintf("%v is not after Since (%v)", o.Until, o.Since), "widen the time range")
	}
	if o.Max < 0 {
		bad("Max", "negative", "use 0 for no limit")
	}
	if o.Filter != nil && o.Group == "" {
		bad("Group", "empty while Filter is set", "name the group that records this filtered replay's progress")
	}
	return errors.Join(problems...)
}

// keep applies the filters.
func (o *ReplayOptions) keep(m *keel.Message) bool {
	if !o.Since.IsZero() && m.Timestamp.Before(o.Since) {
		return false
	}
	if !o.Until.IsZero() && !m.Timestamp.Before(o.Until) {
		return false
	}
	if len(o.Keys) > 0 {
		found := false
		for _, k := range o.Keys {
			if bytes.Equal(k, m.Key) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if o.FailedBy != "" {
		if info, _, _ := InfoOf(m); info.Group != o.FailedBy {
			return false
		}
	}
	return o.Filter == nil || o.Filter(m)
}

// group returns the replay's consumer group: the one given, or one named
// after the topic and the filters.
func (o *ReplayOptions) group() string {
	if o.Group != "" {
		return o.Group
	}
	name := "keel-replay." + o.DLT
	if o.Since.IsZero() && o.Until.IsZero() && len(o.Keys) == 0 && o.FailedBy == "" && o.Topic == "" {
		return name
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "since=%d\x00until=%d\x00failed-by=%s\x00topic=%s\x00", millisOrZero(o.Since), millisOrZero(o.Until), o.FailedBy, o.Topic)
	keys := make([]string, len(o.Keys))
	for i, k := range o.Keys {
		keys[i] = strconv.Quote(string(k))
		if k == nil {
			keys[i] = "null"
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "key=%s\x00", k)
	}
	return fmt.Sprintf("%s.%016x", name, h.Sum64())
}

func millisOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// checkIdle refuses to start while the replay's group has members.
func checkIdle(ctx context.Context, adm *admin.Admin, group string) error {
	descs, err := adm.DescribeGroups(ctx, group)
	if errors.Is(err, admin.ErrGroupNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retry: replay: describing group %s: %w", group, err)
	}
	for _, d := range descs {
		if len(d.Members) > 0 {
			return fmt.Errorf("%w: group %s has %d active member(s): another replay with it is running, or a killed one's session has not expired yet (up to %v); wait and run it again (under another group the replay would start afresh and copy again what this group already replayed)",
				ErrReplayBusy, group, len(d.Members), replaySessionTimeout)
		}
	}
	return nil
}
