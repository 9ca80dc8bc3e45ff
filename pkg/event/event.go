package event

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// SchemaBase is where the JSON Schemas of schemas/ are published; an event's
// dataschema is SchemaBase + <type tail> + ".json", the schema's $id.
const SchemaBase = "https://accountwatch.io/schemas/v1/"

// ContentType of every event's data.
const ContentType = "application/json"

// CloudEvents extension attributes set on every event.
const (
	ExtProvider  = "provider"
	ExtAccountID = "accountid"
	ExtSeverity  = "severity"
	// ExtChainHash carries the event's own hash (see Event.Hash); the next event of
	// the same account names it in data.chain.prev.
	ExtChainHash = "chainhash"
	// ExtTraceParent is set where tracing is on.
	ExtTraceParent = "traceparent"
	// ExtReplayed marks an event re-sent from the audit log.
	ExtReplayed = "replayed"
)

// ProviderScope is the account id of poll.degraded/recovered events that concern a
// whole provider connection rather than one account.
const ProviderScope = "*"

// PollerScope is the account id of the dead-man's poll.stalled/resumed
// events: the poller's work on a connection, as another service saw it. A
// scope of its own, so that its hash chain (kept by that service) never
// forks the poller's chain of ProviderScope.
const PollerScope = "*poller"

// Value is one observed value of a field.
type Value struct {
	// Value is the normalised value: an enum in lower snake case, a decimal string for money.
	Value string `json:"value"`
	// Raw is the upstream's own spelling, kept when it differs from Value.
	Raw string `json:"raw,omitempty"`
	// Items holds list-valued fields (a CAMS profile's Websites); Value is then the items joined by ", ".
	Items []string `json:"items,omitempty"`
}

// Evidence ties an event to the upstream answer it was derived from.
type Evidence struct {
	RequestID      string `json:"request_id,omitempty"`
	ResponseSHA256 string `json:"response_sha256,omitempty"`
	// Endpoint is the upstream operation, e.g. "GetCustomerAccountInfo"; never a URL with credentials.
	Endpoint string `json:"endpoint,omitempty"`
}

// Chain links the events of one account: Seq counts them from 1, Prev is the hash
// of the account's previous event (empty for the first).
type Chain struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
}

// Debt details a debt.changed event. Every amount is an exact decimal string.
// The event's field is current_debt, or balance for a prepaid account's
// balance crossing its floor.
type Debt struct {
	Delta string `json:"delta"`
	// Threshold is the line the debt is measured against, and ThresholdSource where it
	// came from: "account" (financial_blocking_threshold), "subscription_credit_limit"
	// (the account's, used where it has no blocking threshold) or "config".
	Threshold       string `json:"threshold,omitempty"`
	ThresholdSource string `json:"threshold_source,omitempty"`
	// Crossed is "above" or "below" when the change crossed a line, else
	// empty: Line when a ladder step was crossed, else Threshold (for a
	// balance, Floor).
	Crossed string `json:"crossed,omitempty"`
	// Step is the ladder step crossed, a percentage of Threshold ("80"), and
	// Line its amount; a change crossing several steps names the highest.
	Step string `json:"step,omitempty"`
	Line string `json:"line,omitempty"`
	// Floor is a prepaid account's balance floor (field balance).
	Floor    string `json:"floor,omitempty"`
	Balance  string `json:"balance,omitempty"`
	Currency string `json:"currency,omitempty"`
}

// Problems of an account's standing, worst first.
const (
	ProblemCreditHold         = "credit_hold"
	ProblemFrozen             = "frozen"
	ProblemOverThreshold      = "over_threshold"
	ProblemAdministrativeHold = "administrative_hold"
	ProblemBelowFloor         = "below_floor"
	ProblemDegraded           = "degraded"
)

// Problems lists the problems in order, worst first.
var Problems = []string{ProblemCreditHold, ProblemFrozen, ProblemOverThreshold, ProblemAdministrativeHold, ProblemBelowFloor, ProblemDegraded}

// Standing is the account's standing once the change happened, as the
// poller knows it: what is wrong (nothing: good standing), since when, and
// the figures. Consumers need no state of their own to say what is still
// wrong after a recovery, or to keep an account's first message current.
type Standing struct {
	// Problems are what is wrong, in the order of Problems; empty is good standing.
	Problems []string `json:"problems"`
	// Since is when the account entered bad standing (at baseline: its first
	// observation, when it was already so).
	Since             *time.Time `json:"since,omitempty"`
	Status            string     `json:"status,omitempty"`
	HostingStatus     string     `json:"hosting_status,omitempty"`
	CreditLimitStatus string     `json:"credit_limit_status,omitempty"`
	Debt              string     `json:"debt,omitempty"`
	Threshold         string     `json:"threshold,omitempty"`
	Balance           string     `json:"balance,omitempty"`
	Floor             string     `json:"floor,omitempty"`
	Currency          string     `json:"currency,omitempty"`
}

// Bad reports whether the standing has a problem.
func (s *Standing) Bad() bool { return s != nil && len(s.Problems) > 0 }

// Has reports whether the standing has problem p.
func (s *Standing) Has(p string) bool {
	if s == nil {
		return false
	}
	for _, q := range s.Problems {
		if q == p {
			return true
		}
	}
	return false
}

// Forecast details a debt.forecast event: when the debt is projected to
// reach its blocking threshold, by which method, from which observations.
type Forecast struct {
	// Method is how the projection was made: "least_squares" (a straight
	// line fitted to the observations).
	Method          string `json:"method"`
	Threshold       string `json:"threshold"`
	ThresholdSource string `json:"threshold_source,omitempty"`
	Currency        string `json:"currency,omitempty"`
	// Current is the last observed debt, RatePerDay the fitted growth.
	Current    string `json:"current"`
	RatePerDay string `json:"rate_per_day"`
	// ETA is when the debt reaches Threshold on the fitted line; HorizonHours
	// the horizon it fell inside.
	ETA          time.Time `json:"eta"`
	HorizonHours float64   `json:"horizon_hours"`
	// Observations are the points the line was fitted to, oldest first.
	Observations []Point `json:"observations"`
}

// Point is one observed amount.
type Point struct {
	At    time.Time `json:"at"`
	Value string    `json:"value"`
}

// Poll details poll.degraded and poll.recovered.
type Poll struct {
	// Scope is "account" or "provider".
	Scope               string    `json:"scope"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Since               time.Time `json:"since"`
	ErrorCode           string    `json:"error_code,omitempty"`
	LastError           string    `json:"last_error,omitempty"`
	// Cause says what could not be read (poll.degraded): which operation,
	// which account, which field of the answer. Secrets and personal data
	// are left out of it.
	Cause *PollCause `json:"cause,omitempty"`
}

// PollCause is why a read failed.
type PollCause struct {
	// Operation is the upstream operation ("get account 1000123", "list
	// accounts page 3", "GetCustomerAccountInfo").
	Operation string `json:"operation"`
	// AccountID is the account that could not be read, when the operation
	// is not about it alone (an account of a listing).
	AccountID string `json:"account_id,omitempty"`
	// Field is the field of the answer at fault (an answer that cannot be
	// decoded), e.g. "current_debt" or "Data.HostingStatus".
	Field string `json:"field,omitempty"`
	// Kind is the class of failure: malformed, throttled, unauthorised,
	// not_found, transient, rejected.
	Kind       string `json:"kind"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Code       string `json:"code,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	// Detail is what was wrong, in words ("not a decimal amount"), with
	// secrets and personal data masked.
	Detail string `json:"detail,omitempty"`
}

// Stall details poll.stalled and poll.resumed: a connection's poll cycles
// stopped, or started again, as the dead-man watching them saw it.
type Stall struct {
	// Reason is why the connection counts as stalled: "no_cycle" (no cycle
	// completed within Intervals poll intervals) or "no_lease" (no poller
	// replica holds the connection's lease).
	Reason string `json:"reason"`
	// Since is when the connection was last known to work: its last
	// completed cycle (or, never having completed one, when it was first
	// seen). poll.resumed carries the stall's Since; its ID derives from it.
	Since time.Time `json:"since"`
	// LastCycleAt is the last completed cycle (poll.resumed: the one that
	// resumed), when there was one.
	LastCycleAt *time.Time `json:"last_cycle_at,omitempty"`
	// Interval is the connection's poll interval ("5s"), Intervals how many
	// of them the dead-man waits for a cycle.
	Interval  string `json:"interval"`
	Intervals int    `json:"intervals"`
	// LeaseHolder is the replica that holds the lease (or held it last).
	LeaseHolder string `json:"lease_holder,omitempty"`
}

// Onboarding details account.created.
type Onboarding struct {
	RelationType string `json:"relation_type"`
	Mpk          string `json:"mpk,omitempty"`
}

// Data is the payload of every event. Which optional parts are present depends on
// the type; schemas/ says exactly which, per type.
type Data struct {
	Provider           Provider          `json:"provider"`
	Instance           string            `json:"instance"`
	AccountID          string            `json:"account_id"`
	AccountName        string            `json:"account_name,omitempty"`
	Field              string            `json:"field,omitempty"`
	Previous           *Value            `json:"previous,omitempty"`
	Current            *Value            `json:"current,omitempty"`
	Debt               *Debt             `json:"debt,omitempty"`
	Poll               *Poll             `json:"poll,omitempty"`
	Stall              *Stall            `json:"stall,omitempty"`
	Onboarding         *Onboarding       `json:"onboarding,omitempty"`
	Forecast           *Forecast         `json:"forecast,omitempty"`
	Attributes         map[string]string `json:"attributes,omitempty"`
	ObservedAt         time.Time         `json:"observed_at"`
	PreviousObservedAt *time.Time        `json:"previous_observed_at,omitempty"`
	Severity           Severity          `json:"severity"`
	Labels             map[string]string `json:"labels,omitempty"`
	Evidence           Evidence          `json:"evidence"`
	Chain              Chain             `json:"chain"`
	// Standing is the account's standing once this change happened (set by
	// the poller; absent from older events and onboarding's).
	Standing *Standing `json:"standing,omitempty"`
}

// Event is a built event: the CloudEvent as it travels, and its decoded data.
type Event struct {
	Cloud cloudevents.Event
	Data  Data
}

// ID is the CloudEvents id.
func (e *Event) ID() string { return e.Cloud.ID() }

// Type is the contract type.
func (e *Event) Type() Type { return Type(e.Cloud.Type()) }

// Severity is the severity extension.
func (e *Event) Severity() Severity { return e.Data.Severity }

// Subject is the NATS subject the event is published on.
func (e *Event) Subject() (string, error) {
	return Subject(e.Data.Provider, e.Data.Instance, e.Type(), e.Data.AccountID)
}

// Hash is the event's link in its account's hash chain: SHA-256 over the id and
// the data bytes exactly as carried. Data includes chain.prev, so each hash covers
// the whole history of the account before it.
func (e *Event) Hash() string { return HashOf(e.Cloud.ID(), e.Cloud.Data()) }

// HashOf computes Event.Hash from an id and raw data bytes, as a verifier that
// holds only the stored message does.
func HashOf(id string, data []byte) string {
	var h Hasher
	sum := h.Sum(id, data)
	return hex.EncodeToString(sum[:])
}

// Hasher computes HashOf's digest in a state it reuses: a verifier hashing
// millions of events allocates nothing per event. Not for concurrent use.
type Hasher struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// Sum is the digest HashOf encodes in hex.
func (x *Hasher) Sum(id string, data []byte) [sha256.Size]byte {
	if x.h == nil {
		x.h = sha256.New()
	}
	x.h.Reset()
	x.buf = append(append(append(x.buf[:0], "accountwatch-chain-v1\n"...), id...), '\n')
	x.h.Write(x.buf)
	x.h.Write(data)
	x.h.Sum(x.sum[:0])
	return x.sum
}

// Source is the CloudEvents source of an upstream connection.
func Source(p Provider, instance string) string {
	return "urn:accountwatch:" + string(p) + ":" + instance
}

// DataSchema is the dataschema URI of a type.
func DataSchema(t Type) string { return SchemaBase + t.Tail() + ".json" }

// DeterministicID derives an event id from what makes a change unique: the same
// change detected twice (a poller that crashed before saving its state) gets the
// same id, so the stream's dedup and every receiver's idempotency key catch it.
func DeterministicID(p Provider, instance, accountID string, t Type, field, previous, current string, prevRevision uint64) string {
	h := sha256.New()
	for _, s := range []string{string(p), instance, accountID, string(t), field, previous, current} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var r [8]byte
	binary.BigEndian.PutUint64(r[:], prevRevision)
	h.Write(r[:])
	return "aw1-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// build finishes an event: it validates the common metadata, fills the common
// data fields, derives the id and assembles the CloudEvent.
func build(t Type, m Meta, d Data, defaultSeverity Severity) (*Event, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", t.Tail(), err)
	}
	d.Provider, d.Instance, d.AccountID, d.AccountName = m.Provider, m.Instance, m.AccountID, m.AccountName
	d.ObservedAt = m.ObservedAt.UTC()
	if !m.PreviousObservedAt.IsZero() {
		p := m.PreviousObservedAt.UTC()
		d.PreviousObservedAt = &p
	}
	d.Severity = defaultSeverity
	if m.Severity != "" {
		d.Severity = m.Severity
	}
	if d.Severity.Rank() == 0 {
		return nil, fmt.Errorf("%s: %w: severity %q", t.Tail(), ErrInvalid, d.Severity)
	}
	if len(m.Labels) > 0 {
		d.Labels = make(map[string]string, len(m.Labels))
		for k, v := range m.Labels {
			d.Labels[k] = v
		}
	}
	d.Evidence = m.Evidence
	d.Chain = m.Chain
	d.Standing = m.Standing
	if d.Chain.Seq == 0 {
		d.Chain.Seq = 1
	}
	if d.Chain.Seq == 1 && d.Chain.Prev != "" || d.Chain.Seq > 1 && len(d.Chain.Prev) != 64 {
		return nil, fmt.Errorf("%s: %w: chain seq %d with prev %q", t.Tail(), ErrInvalid, d.Chain.Seq, d.Chain.Prev)
	}

	var prev, cur string
	if d.Previous != nil {
		prev = d.Previous.Value
	}
	if d.Current != nil {
		cur = d.Current.Value
	}
	if d.Poll != nil {
		// A degraded/recovered pair of one outage differs by type; two outages differ by their start.
		cur = d.Poll.Since.UTC().Format(time.RFC3339Nano)
	}
	if d.Stall != nil {
		cur = d.Stall.Since.UTC().Format(time.RFC3339Nano) // as poll events: one id per stall and type
	}
	id := DeterministicID(m.Provider, m.Instance, m.AccountID, t, d.Field, prev, cur, m.Revision)
	return assemble(id, t, d)
}

// assemble encodes d and builds the CloudEvent around it.
func assemble(id string, t Type, d Data) (*Event, error) {
	body, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%s: encode data: %w", t.Tail(), err)
	}
	ce := cloudevents.New(cloudevents.CloudEventsVersionV1)
	ce.SetID(id)
	ce.SetSource(Source(d.Provider, d.Instance))
	ce.SetType(string(t))
	ce.SetSubject(d.AccountID)
	ce.SetTime(d.ObservedAt)
	ce.SetDataSchema(DataSchema(t))
	ce.SetDataContentType(ContentType)
	// Carried as JSON, not base64: SetData would mark raw bytes as binary data.
	ce.DataEncoded = body
	ce.SetExtension(ExtProvider, string(d.Provider))
	ce.SetExtension(ExtAccountID, d.AccountID)
	ce.SetExtension(ExtSeverity, string(d.Severity))
	ce.SetExtension(ExtChainHash, HashOf(id, body))
	if err := ce.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", t.Tail(), ErrInvalid, err)
	}
	return &Event{Cloud: ce, Data: d}, nil
}
