package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/deadletter"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
	"github.com/accountwatch/accountwatch/pkg/state"
)

// Kinds of problems Verify reports.
const (
	// ProblemGap: stream sequences are missing (messages deleted).
	ProblemGap = "gap"
	// ProblemAltered: a message's data or id no longer match its chain hash,
	// or it does not decode.
	ProblemAltered = "altered"
	// ProblemMissing: an account's chain skips events (removed events).
	ProblemMissing = "missing"
	// ProblemBrokenLink: an event does not name its predecessor's hash (the
	// predecessor was altered, or the event was forged with a made-up link).
	ProblemBrokenLink = "broken_link"
	// ProblemOutOfOrder: an account's chain goes back or repeats.
	ProblemOutOfOrder = "out_of_order"
	// ProblemNewGenesis: an account's chain starts again: a second first
	// link, which rewrites the account's history from a new genesis.
	ProblemNewGenesis = "new_genesis"
	// ProblemRecreated: the stream was created after events it holds were
	// observed: it was deleted and recreated and its events published again
	// (or restored); or it is not the stream a checkpoint saw.
	ProblemRecreated = "recreated"
	// ProblemTrimmed: the stream's first sequence is past 1 and its limits
	// could not have removed what is gone: its head was cut.
	ProblemTrimmed = "trimmed_head"
	// ProblemStateMismatch: an account's last event in the stream is not the
	// chain head its state record in AW_STATE names (events removed from the
	// stream, a link rewritten, or a record altered).
	ProblemStateMismatch = "state_mismatch"
	// ProblemForgedLink: the stream holds links of an account past the
	// chain head AW_STATE records: no poller commit wrote them.
	ProblemForgedLink = "forged_link"
	// ProblemCheckpoint: the log no longer holds what a signed checkpoint
	// committed to.
	ProblemCheckpoint = "checkpoint_mismatch"
	// ProblemCheckpointInvalid: a stored checkpoint whose signature does
	// not verify, or that a key not trusted signed.
	ProblemCheckpointInvalid = "checkpoint_invalid"
)

// Problem is one finding, placed precisely.
type Problem struct {
	Kind    string `json:"kind"`
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Account string `json:"account,omitempty"` // provider/instance/account
	Detail  string `json:"detail"`
}

// CheckpointResult is how one signed checkpoint compares with the log.
type CheckpointResult struct {
	// Source is where it came from: "AW_CHECKPOINTS seq 12" or a file.
	Source   string    `json:"source"`
	LastSeq  uint64    `json:"last_seq"`
	Accounts int       `json:"accounts"`
	Root     string    `json:"root"`
	Signed   time.Time `json:"signed_at"`
	KeyID    string    `json:"key_id"`
	// SignerProblems is what the signer's verification had found when it signed.
	SignerProblems int `json:"signer_problems"`
	// OK: the log still holds exactly what the checkpoint committed to.
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is the result of a verification.
type Report struct {
	Stream   string `json:"stream"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Created is the stream's creation time.
	Created  time.Time `json:"stream_created"`
	Events   uint64    `json:"events"`
	Accounts int       `json:"accounts"`
	// Root is the checkpoint root of every account's chain head at LastSeq.
	Root string `json:"root"`
	// Heads are the chain heads (with Options.Heads).
	Heads []checkpoint.Head `json:"heads,omitempty"`
	// StateChecked: every head was compared with AW_STATE.
	StateChecked bool               `json:"state_checked"`
	Checkpoints  []CheckpointResult `json:"checkpoints"`
	Problems     []Problem          `json:"problems"`
	// Unlisted counts problems found past MaxProblems (not listed).
	Unlisted int       `json:"problems_unlisted,omitempty"`
	Checked  time.Time `json:"checked_at"`
}

// MaxProblems bounds the problems a report lists: a log broken everywhere
// is reported with a count, in bounded memory.
const MaxProblems = 10_000

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// DefaultSkew is the clock difference tolerated between the poller, which
// stamps observed_at, and the server, which stamps the stream's creation.
const DefaultSkew = 5 * time.Minute

// Checkpoint is an exported checkpoint to prove the log against.
type Checkpoint struct {
	Source string
	*checkpoint.Signed
}

// Options say what Verify checks beyond every chain and the stream's continuity.
type Options struct {
	// Stream is the event stream (AW_EVENTS when empty).
	Stream string
	// State compares every account's chain head with its AW_STATE record.
	State bool
	// Stored checks the newest checkpoint in AW_CHECKPOINTS.
	Stored bool
	// Checkpoints are exported checkpoints the log must still contain.
	Checkpoints []Checkpoint
	// Trusted keys: a checkpoint signed by another is a problem (any valid
	// signature is taken when empty, and its fingerprint reported).
	Trusted []ed25519.PublicKey
	// Heads lists every account's chain head in the report.
	Heads bool
	// Skew is the clock difference tolerated (DefaultSkew when 0).
	Skew     time.Duration
	Progress Progress
}

// DefaultOptions check the audit log with everything that vouches for it:
// AW_STATE and the newest stored checkpoint.
func DefaultOptions() Options {
	return Options{Stream: eventbus.StreamEvents, State: true, Stored: true}
}

// head is an account's chain head: its last link and where it is stored.
type head struct {
	seq, streamSeq uint64
	hash           [sha256.Size]byte
	inState        bool
}

// hexHash is h's hash as events name it.
func (h *head) hexHash() string { return hex.EncodeToString(h.hash[:]) }

// pendingCheckpoint waits for the walk to pass its last sequence; res
// indexes its result in the report.
type pendingCheckpoint struct {
	res    int
	cp     checkpoint.Checkpoint
	source string
}

// Verifier checks an event stream message by message, in order. Its memory
// is one chain head per account, whatever the number of events; it can be
// fed more as the stream grows (the auditor's checkpoints).
type Verifier struct {
	rep       Report
	skew      time.Duration
	chains    map[string]*head
	expect    uint64
	hasher    event.Hasher
	key       []byte // the account key being checked
	agedOut   bool   // the stream's start may have aged out (its limits allow it)
	recreated struct {
		n        int
		problem  int
		observed time.Time
	}
	pending []pendingCheckpoint
}

// streamInfo reads what Verify needs about the stream.
func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return info, nil
}

// NewVerifier starts the verification of a stream described by info: its
// start is checked at once (a head cut off, a stream recreated).
func NewVerifier(info *jetstream.StreamInfo, skew time.Duration, now time.Time) *Verifier {
	if skew <= 0 {
		skew = DefaultSkew
	}
	v := &Verifier{skew: skew, chains: map[string]*head{}, expect: max(info.State.FirstSeq, 1)}
	v.rep = Report{Stream: info.Config.Name, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Created: info.Created.UTC(), Checked: now.UTC()}
	cfg := info.Config
	limited := cfg.MaxMsgs > 0 || cfg.MaxBytes > 0 || cfg.MaxMsgsPerSubject > 0
	aged := cfg.MaxAge > 0 && info.Created.Add(cfg.MaxAge).Before(now)
	cut := info.State.FirstSeq > 1 || info.State.Msgs == 0 && info.State.LastSeq > 0
	v.agedOut = cut && (limited || aged)
	if cut && !v.agedOut {
		first := max(info.State.FirstSeq, info.State.LastSeq+1)
		v.add(Problem{Kind: ProblemTrimmed, Seq: first, Detail: fmt.Sprintf(
			"the stream starts at sequence %d: sequences 1 to %d are gone, and its limits could not have removed them (max age %s, created %s, no message or byte limit)",
			first, first-1, fmtAge(cfg.MaxAge), info.Created.UTC().Format(time.RFC3339))})
	}
	return v
}

func fmtAge(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	return d.String()
}

func (v *Verifier) add(p Problem) {
	if len(v.rep.Problems) >= MaxProblems {
		v.rep.Unlisted++
		return
	}
	v.rep.Problems = append(v.rep.Problems, p)
}

// chainData is the part of an event's data the verifier reads.
type chainData struct {
	Provider   string      `json:"provider"`
	Instance   string      `json:"instance"`
	AccountID  string      `json:"account_id"`
	ObservedAt time.Time   `json:"observed_at"`
	Chain      event.Chain `json:"chain"`
}

func accountKey(provider, instance, account string) string {
	return provider + "/" + instance + "/" + account
}

// Next is the next stream sequence the verifier expects.
func (v *Verifier) Next() uint64 { return v.expect }

// Add checks the message stored at seq. The common case allocates nothing:
// the data is scanned in place, hashed in a reused state, and compared in
// hex on the stack.
func (v *Verifier) Add(seq uint64, subject string, h nats.Header, data []byte) {
	v.settle(seq)
	v.rep.Events++
	if seq != v.expect {
		v.add(Problem{Kind: ProblemGap, Seq: seq, Detail: fmt.Sprintf("stream sequences %d to %d are missing", v.expect, seq-1)})
	}
	v.expect = seq + 1
	v.rep.LastSeq = max(v.rep.LastSeq, seq)
	id := h.Get("ce-id")
	d, ok := decodeChain(data)
	if !ok || id == "" {
		v.add(Problem{Kind: ProblemAltered, Seq: seq, EventID: id, Detail: fmt.Sprintf("message on %s does not decode as an event", subject)})
		return
	}
	v.key = append(append(append(append(append(v.key[:0], d.provider...), '/'), d.instance...), '/'), d.account...)
	acct := func() string { return string(v.key) } // for a problem only
	hash := v.hasher.Sum(id, data)
	var hexHash [2 * sha256.Size]byte
	hex.Encode(hexHash[:], hash[:])
	if want := h.Get("ce-" + event.ExtChainHash); want != string(hexHash[:]) {
		v.add(Problem{Kind: ProblemAltered, Seq: seq, EventID: id, Account: acct(), Detail: fmt.Sprintf("data or id changed: hash %s…, the event says %s…", string(hexHash[:12]), short(want))})
	}
	if !v.rep.Created.IsZero() && d.observedAt.Before(v.rep.Created.Add(-v.skew)) {
		if v.recreated.n == 0 {
			v.recreated.problem, v.recreated.observed = len(v.rep.Problems), d.observedAt
			v.add(Problem{Kind: ProblemRecreated, Seq: seq, EventID: id, Account: acct()})
		}
		v.recreated.n++
	}
	prev, seen := v.chains[string(v.key)]
	var prevHex [2 * sha256.Size]byte
	if seen {
		hex.Encode(prevHex[:], prev.hash[:])
	}
	switch {
	case d.seq == 1 && len(d.prev) != 0:
		v.add(Problem{Kind: ProblemBrokenLink, Seq: seq, EventID: id, Account: acct(), Detail: fmt.Sprintf("the account's first link names a predecessor %s…", short(string(d.prev)))})
	case !seen && d.seq != 1 && !v.agedOut:
		v.add(Problem{Kind: ProblemMissing, Seq: seq, EventID: id, Account: acct(), Detail: fmt.Sprintf("the account's first event in the stream is link %d of its chain: links 1 to %d are missing", d.seq, d.seq-1)})
	case !seen:
	case d.seq == 1:
		v.add(Problem{Kind: ProblemNewGenesis, Seq: seq, EventID: id, Account: acct(), Detail: fmt.Sprintf("the account's chain starts again here, after link %d (stream sequence %d): its history is rewritten from a new genesis", prev.seq, prev.streamSeq)})
	case d.seq <= prev.seq:
		v.add(Problem{Kind: ProblemOutOfOrder, Seq: seq, EventID: id, Account: acct(), Detail: fmt.Sprintf("link %d comes after link %d", d.seq, prev.seq)})
	case d.seq > prev.seq+1:
		v.add(Problem{Kind: ProblemMissing, Seq: seq, EventID: id, Account: acct(), Detail: fmt.Sprintf("links %d to %d of the account's chain are missing (before stream sequence %d)", prev.seq+1, d.seq-1, seq)})
	case string(d.prev) != string(prevHex[:]):
		v.add(Problem{Kind: ProblemBrokenLink, Seq: seq, EventID: id, Account: acct(), Detail: fmt.Sprintf("names predecessor %s…, but link %d as stored hashes to %s…", short(string(d.prev)), prev.seq, string(prevHex[:12]))})
	}
	if !seen {
		prev = &head{}
		v.chains[string(v.key)] = prev
	} else if d.seq <= prev.seq && d.seq != 1 {
		return
	}
	*prev = head{seq: d.seq, streamSeq: seq, hash: hash}
}

// End records that the stream's last sequence is last: sequences not seen
// up to it are a gap, and checkpoints up to it are settled.
func (v *Verifier) End(last uint64) {
	v.settle(last + 1)
	if v.expect <= last {
		v.add(Problem{Kind: ProblemGap, Seq: v.expect, Detail: fmt.Sprintf("stream sequences %d to %d are missing", v.expect, last)})
		v.expect = last + 1
	}
	v.rep.LastSeq = max(v.rep.LastSeq, last)
	v.settle(math.MaxUint64) // checkpoints past the end: the log lost what they held
	if v.recreated.n > 0 && v.recreated.problem < len(v.rep.Problems) {
		p := &v.rep.Problems[v.recreated.problem]
		p.Detail = fmt.Sprintf("%d events were observed before the stream was created (%s), the first here, observed %s: the stream was deleted and recreated and its events published again (a restore from backup does this too: prove it against an exported checkpoint)",
			v.recreated.n, v.rep.Created.Format(time.RFC3339), v.recreated.observed.UTC().Format(time.RFC3339))
	}
}

// Heads are every account's chain head.
func (v *Verifier) Heads() []checkpoint.Head {
	out := make([]checkpoint.Head, 0, len(v.chains))
	for a, h := range v.chains {
		out = append(out, checkpoint.Head{Account: a, Seq: h.seq, Hash: h.hexHash()})
	}
	return out
}

// Checkpoint is what the verifier has seen, to sign: the stream up to its
// last sequence, the root of its chain heads, the problems found.
func (v *Verifier) Checkpoint(now time.Time) checkpoint.Checkpoint {
	return checkpoint.Checkpoint{Stream: v.rep.Stream, StreamCreated: v.rep.Created, FirstSeq: v.rep.FirstSeq, LastSeq: v.rep.LastSeq,
		Accounts: len(v.chains), Root: checkpoint.Root(v.Heads()), Problems: len(v.rep.Problems) + v.rep.Unlisted, Time: now}
}

// Problems found so far.
func (v *Verifier) Problems() int { return len(v.rep.Problems) + v.rep.Unlisted }

// Expect registers a checkpoint to prove, before the walk: when the walk
// passes its last sequence, the heads then must hash to its root.
func (v *Verifier) Expect(source string, s *checkpoint.Signed) {
	cp := s.Checkpoint()
	v.rep.Checkpoints = append(v.rep.Checkpoints, CheckpointResult{Source: source, LastSeq: cp.LastSeq, Accounts: cp.Accounts, Root: cp.Root,
		Signed: cp.Time, KeyID: cp.KeyID, SignerProblems: cp.Problems})
	if !cp.StreamCreated.Equal(v.rep.Created) {
		v.add(Problem{Kind: ProblemRecreated, Seq: v.rep.FirstSeq, Detail: fmt.Sprintf("the stream was created %s, but checkpoint %s (signed %s) saw it created %s: it was deleted and recreated since",
			v.rep.Created.Format(time.RFC3339), source, cp.Time.Format(time.RFC3339), cp.StreamCreated.UTC().Format(time.RFC3339))})
	}
	v.pending = append(v.pending, pendingCheckpoint{res: len(v.rep.Checkpoints) - 1, cp: cp, source: source})
	v.settle(v.expect) // one that ends before the stream's start is compared at once
}

// settle compares every pending checkpoint whose last sequence is before seq.
func (v *Verifier) settle(seq uint64) {
	if len(v.pending) == 0 {
		return
	}
	keep := v.pending[:0]
	for _, p := range v.pending {
		if p.cp.LastSeq >= seq {
			keep = append(keep, p)
			continue
		}
		v.compare(p)
	}
	v.pending = keep
}

func (v *Verifier) compare(p pendingCheckpoint) {
	res, cp := &v.rep.Checkpoints[p.res], p.cp
	switch {
	case cp.LastSeq > v.rep.LastSeq && v.expect <= cp.LastSeq:
		res.Detail = fmt.Sprintf("the checkpoint committed to sequence %d; the log ends at %d: events it held are gone", cp.LastSeq, v.rep.LastSeq)
	case cp.FirstSeq < v.rep.FirstSeq && v.agedOut:
		res.OK, res.Detail = true, fmt.Sprintf("not checkable: sequences before %d aged out of the stream after it was signed", v.rep.FirstSeq)
		return
	default:
		heads := v.Heads()
		root := checkpoint.Root(heads)
		if root == cp.Root && len(heads) == cp.Accounts {
			res.OK, res.Detail = true, fmt.Sprintf("the log holds everything it committed to: %d chain heads at sequence %d hash to its root", len(heads), cp.LastSeq)
			return
		}
		res.Detail = fmt.Sprintf("at sequence %d the log's %d chain heads hash to %s…, the checkpoint signed %s… over %d: history up to it was rewritten", cp.LastSeq, len(heads), short(root), short(cp.Root), cp.Accounts)
	}
	v.add(Problem{Kind: ProblemCheckpoint, Seq: cp.LastSeq, Detail: fmt.Sprintf("checkpoint %s (signed %s by %s): %s", p.source, cp.Time.Format(time.RFC3339), cp.KeyID, res.Detail)})
}

// Report is the verification so far.
func (v *Verifier) Report(withHeads bool) Report {
	r := v.rep
	r.Accounts = len(v.chains)
	heads := v.Heads()
	r.Root = checkpoint.Root(heads)
	if withHeads {
		r.Heads = heads
	}
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	if r.Checkpoints == nil {
		r.Checkpoints = []CheckpointResult{}
	}
	return r
}

// Verify walks a whole event stream and checks that its sequence has no gap
// and that every account's hash chain is whole: each event's chain hash
// matches its id and data, its chain sequence follows the previous one of
// its account, and it names that event's hash; that the stream was neither
// recreated (events observed before it existed) nor cut at its head (a first
// sequence its limits do not explain). With opts it then compares every
// account's chain head with AW_STATE, and proves the log against signed
// checkpoints: the newest stored one and exported ones. Memory is bounded by
// the number of accounts.
func Verify(ctx context.Context, js jetstream.JetStream, opts Options) (Report, error) {
	if opts.Stream == "" {
		opts.Stream = eventbus.StreamEvents
	}
	info, err := streamInfo(ctx, js, opts.Stream)
	if err != nil {
		return Report{}, err
	}
	v := NewVerifier(info, opts.Skew, time.Now())
	for _, c := range opts.Checkpoints {
		if c.Checkpoint().Stream != opts.Stream {
			return Report{}, fmt.Errorf("%w: checkpoint %s is of stream %s, not %s", ErrInvalid, c.Source, c.Checkpoint().Stream, opts.Stream)
		}
		if err := c.Trusted(opts.Trusted); err != nil {
			return Report{}, fmt.Errorf("checkpoint %s: %w", c.Source, err)
		}
		v.Expect(c.Source, c.Signed)
	}
	if opts.Stored {
		if err := v.expectStored(ctx, js, opts.Trusted); err != nil {
			return Report{}, err
		}
	}
	if err := v.Walk(ctx, js, info.State.LastSeq, opts.Progress); err != nil {
		return v.Report(opts.Heads), err
	}
	if opts.State {
		if err := v.CrossCheckState(ctx, js); err != nil {
			return v.Report(opts.Heads), err
		}
	}
	return v.Report(opts.Heads), nil
}

// Walk feeds the verifier every message from its next sequence to last.
func (v *Verifier) Walk(ctx context.Context, js jetstream.JetStream, last uint64, progress Progress) error {
	if last >= v.expect {
		err := replay(ctx, js, v.rep.Stream, Selection{FromSeq: v.expect, ToSeq: last}, progress, func(m jetstream.Msg, seq uint64, _ time.Time) error {
			v.Add(seq, m.Subject(), m.Headers(), m.Data())
			return nil
		})
		if err != nil {
			return err
		}
	}
	v.End(last)
	return nil
}

// expectStored registers the newest checkpoint of AW_CHECKPOINTS.
func (v *Verifier) expectStored(ctx context.Context, js jetstream.JetStream, trusted []ed25519.PublicKey) error {
	st, err := checkpoint.Latest(ctx, js, v.rep.Stream)
	switch {
	case errors.Is(err, checkpoint.ErrNone), errors.Is(err, jetstream.ErrStreamNotFound):
		return nil
	case errors.Is(err, checkpoint.ErrSignature), errors.Is(err, checkpoint.ErrMalformed):
		v.add(Problem{Kind: ProblemCheckpointInvalid, Detail: fmt.Sprintf("the newest stored checkpoint: %v", err)})
		return nil
	case err != nil:
		return fmt.Errorf("verify: %w", err)
	}
	source := eventbus.StreamCheckpoints + " seq " + strconv.FormatUint(st.Seq, 10)
	if err := st.Trusted(trusted); err != nil {
		v.add(Problem{Kind: ProblemCheckpointInvalid, Seq: st.Checkpoint().LastSeq, Detail: fmt.Sprintf("%s: %v", source, err)})
		return nil
	}
	v.Expect(source, st.Signed)
	return nil
}

// CrossCheckState compares every account's chain head with the record of
// AW_STATE, which the poller writes before it publishes (an outbox): a record
// is never behind the stream, and is ahead only by the events of its outbox.
// Heads that disagree are read again, record and last event, so that a
// commit made during the walk is not taken for tampering.
func (v *Verifier) CrossCheckState(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.KeyValue(ctx, eventbus.BucketState)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil // a stream without its state (a copy): nothing to compare with
	}
	if err != nil {
		return fmt.Errorf("verify: state: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("verify: state: %w", err)
	}
	type suspect struct{ key, acct string }
	var suspects []suspect
	defer w.Stop()
	for done := false; !done; {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return ctx.Err()
		}
		if e == nil {
			done = true
			continue
		}
		var st state.Entry
		if json.Unmarshal(e.Value(), &st) != nil {
			continue // not a record; the poller reports those
		}
		r := st.Record
		acct := accountKey(string(r.Provider), r.Instance, r.AccountID)
		h, ok := v.chains[acct]
		if ok {
			h.inState = true
		}
		if ok && r.Chain.Seq == h.seq && r.Chain.Prev == h.hexHash() || !ok && r.Chain.Seq == 0 {
			continue
		}
		suspects = append(suspects, suspect{e.Key(), acct})
	}
	for acct, h := range v.chains {
		if !h.inState {
			suspects = append(suspects, suspect{"", acct})
		}
	}
	stream, err := js.Stream(ctx, v.rep.Stream)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, s := range suspects {
		p, rest, _ := strings.Cut(s.acct, "/")
		inst, acct, _ := strings.Cut(rest, "/")
		key := s.key
		if key == "" {
			key = state.Key(event.Provider(p), inst, acct)
		}
		var rec *state.Entry
		if e, err := kv.Get(ctx, key); err == nil {
			rec = &state.Entry{}
			if json.Unmarshal(e.Value(), rec) != nil {
				rec = nil
			}
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("verify: state %s: %w", key, err)
		}
		last, err := lastLink(ctx, stream, event.FilterSubject(event.Provider(p), inst, "", acct))
		if err != nil {
			return err
		}
		if last == nil && v.agedOut {
			continue // every event of the account aged out of the stream
		}
		if pr, bad := stateProblem(s.acct, rec, last); bad {
			v.add(pr)
		}
	}
	v.rep.StateChecked = true
	return nil
}

// link is an account's newest event in the stream now.
type link struct {
	seq, streamSeq uint64
	hash, id       string
}

func lastLink(ctx context.Context, stream jetstream.Stream, filter string) (*link, error) {
	m, err := stream.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("verify: last event on %s: %w", filter, err)
	}
	var d chainData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return &link{streamSeq: m.Sequence}, nil // reported as altered by the walk
	}
	id := m.Header.Get("ce-id")
	return &link{seq: d.Chain.Seq, streamSeq: m.Sequence, hash: event.HashOf(id, m.Data), id: id}, nil
}

// stateProblem compares an account's record (nil: none) with its newest event (nil: none).
func stateProblem(acct string, rec *state.Entry, last *link) (Problem, bool) {
	switch {
	case rec == nil && last == nil:
		return Problem{}, false
	case rec == nil:
		return Problem{Kind: ProblemForgedLink, Seq: last.streamSeq, EventID: last.id, Account: acct,
			Detail: fmt.Sprintf("the stream holds %d links of an account AW_STATE has no record of: no poller commit wrote them", last.seq)}, true
	}
	c := rec.Record.Chain
	var have link
	if last != nil {
		have = *last
	}
	switch {
	case c.Seq == have.seq && c.Prev == have.hash:
		return Problem{}, false
	case c.Seq == have.seq:
		return Problem{Kind: ProblemStateMismatch, Seq: have.streamSeq, EventID: have.id, Account: acct,
			Detail: fmt.Sprintf("link %d in the stream hashes to %s…, AW_STATE recorded %s…: the link was rewritten (or the record)", c.Seq, short(have.hash), short(c.Prev))}, true
	case c.Seq < have.seq:
		return Problem{Kind: ProblemForgedLink, Seq: have.streamSeq, EventID: have.id, Account: acct,
			Detail: fmt.Sprintf("the stream holds link %d of the account, past link %d that AW_STATE records: no poller commit wrote links %d to %d", have.seq, c.Seq, c.Seq+1, have.seq)}, true
	case outboxCovers(rec, have):
		return Problem{}, false // the poller's outbox holds the rest: in flight
	case last == nil:
		return Problem{Kind: ProblemStateMismatch, Account: acct,
			Detail: fmt.Sprintf("AW_STATE records link %d (%s…), the stream holds no event of the account: links 1 to %d are gone from it", c.Seq, short(c.Prev), c.Seq)}, true
	default:
		return Problem{Kind: ProblemStateMismatch, Seq: have.streamSeq, EventID: have.id, Account: acct,
			Detail: fmt.Sprintf("AW_STATE records link %d (%s…), the stream's newest event of the account is link %d: links %d to %d are gone from it", c.Seq, short(c.Prev), have.seq, have.seq+1, c.Seq)}, true
	}
}

// outboxCovers: the record's pending events continue the stream's newest
// link up to the record's head.
func outboxCovers(rec *state.Entry, have link) bool {
	next, top := false, false
	for _, p := range rec.Pending {
		var d chainData
		if json.Unmarshal(p.Data, &d) != nil {
			continue
		}
		if d.Chain.Seq == have.seq+1 && d.Chain.Prev == have.hash {
			next = true
		}
		if d.Chain.Seq == rec.Record.Chain.Seq && event.HashOf(p.Header.Get("ce-id"), p.Data) == rec.Record.Chain.Prev {
			top = true
		}
	}
	return next && top
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Timeline is every event of one account, oldest first: the states it had,
// when, and from which upstream answer (each event's evidence).
func Timeline(ctx context.Context, js jetstream.JetStream, p event.Provider, instance, account string, limit int) ([]Record, error) {
	if !p.Valid() || instance == "" || account == "" {
		return nil, fmt.Errorf("%w: a timeline needs provider, instance and account", ErrInvalid)
	}
	var out []Record
	err := Replay(ctx, js, Selection{Provider: p, Instance: instance, Account: account}, nil, func(r *Record) error {
		if _, err := r.Event(); err != nil {
			return err
		}
		out = append(out, *r)
		if limit > 0 && len(out) > limit {
			out = out[1:]
		}
		return nil
	})
	return out, err
}

// Target is where a re-drive goes: a receiver of a sink (a webhook
// endpoint's id, a Slack or email receiver's name), or, with To, an ad-hoc
// destination the sink understands (a Slack channel, an email address).
type Target struct {
	Sink, Receiver, To string
}

// Redrive sends the selected events to one target through its sink's
// re-drive queue (AW_REDRIVE), each marked with the "replayed" extension. The
// originals stay as they are, and each copy carries an id of this re-drive,
// so the stream's dedup window cannot swallow it. With dryRun it only counts.
func Redrive(ctx context.Context, js jetstream.JetStream, sel Selection, to Target, dryRun bool, each func(*Record)) (int, error) {
	sink, receiver := to.Sink, to.Receiver
	if to.To != "" {
		if receiver != "" && receiver != deadletter.AdhocReceiver {
			return 0, fmt.Errorf("%w: give a receiver or an ad-hoc destination, not both", ErrInvalid)
		}
		receiver = deadletter.AdhocReceiver
	}
	if sink == "" || receiver == "" || strings.ContainsAny(sink+receiver, ".*> ") {
		return 0, fmt.Errorf("%w: re-drive needs a sink and a receiver (letters, digits, - and _) or a destination", ErrInvalid)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	n := 0
	err := Replay(ctx, js, sel, nil, func(r *Record) error {
		n++
		if each != nil {
			each(r)
		}
		if dryRun {
			return nil
		}
		h := make(nats.Header, len(r.Raw.Header)+2)
		for k, v := range r.Raw.Header {
			if !strings.HasPrefix(k, "Nats-") {
				h[k] = v
			}
		}
		h.Set("ce-"+event.ExtReplayed, "true")
		if to.To != "" {
			h.Set(deadletter.HdrRedriveTo, to.To)
		}
		h.Set(jetstream.MsgIDHeader, "replay:"+run+":"+h.Get("ce-id"))
		m := deadletter.RedriveMsg(sink, receiver, r.Raw.Subject, h, r.Raw.Data)
		if _, err := js.PublishMsgAsync(m, jetstream.WithExpectStream(eventbus.StreamRedrive)); err != nil {
			return fmt.Errorf("re-drive seq %d: %w", r.Seq, err)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return n, ctx.Err()
	}
	return n, nil
}
