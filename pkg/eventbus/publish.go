package eventbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/event"
)

// Ack is the stream's answer to one publish.
type Ack struct {
	Sequence uint64
	// Duplicate is true when the stream already held an event with this id (within
	// the dedup window): nothing new was stored, and that is not an error.
	Duplicate bool
}

// ErrPublish is returned when the stream did not acknowledge an event.
var ErrPublish = errors.New("publish")

// Publisher publishes events to the event stream and waits for their acks.
type Publisher struct {
	js     jetstream.JetStream
	stream string
}

// NewPublisher publishes on js; every publish is checked to land in AW_EVENTS.
func NewPublisher(js jetstream.JetStream) *Publisher {
	return &Publisher{js: js, stream: StreamEvents}
}

// Publish sends one event and waits for its ack.
func (p *Publisher) Publish(ctx context.Context, e *event.Event) (Ack, error) {
	acks, err := p.PublishAll(ctx, []*event.Event{e})
	if err != nil {
		return Ack{}, err
	}
	return acks[0], nil
}

// PublishAll pipelines the events (async publishes, then one wait for all acks)
// rather than one blocking round trip each. It returns an ack per event, in order,
// or the first error; events before a failure may have been stored, and
// re-publishing them is safe: their ids deduplicate.
func (p *Publisher) PublishAll(ctx context.Context, events []*event.Event) ([]Ack, error) {
	msgs := make([]*nats.Msg, len(events))
	for i, e := range events {
		m, err := Encode(e)
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return p.PublishMsgs(ctx, msgs)
}

// PublishMsgs pipelines already encoded events (an outbox being flushed).
func (p *Publisher) PublishMsgs(ctx context.Context, msgs []*nats.Msg) ([]Ack, error) {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	expect := jetstream.WithExpectStream(p.stream)
	for i, m := range msgs {
		f, err := p.js.PublishMsgAsync(m, expect)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v", ErrPublish, m.Header.Get(jetstream.MsgIDHeader), err)
		}
		futures[i] = f
	}
	acks := make([]Ack, len(msgs))
	for i, f := range futures {
		select {
		case a := <-f.Ok():
			acks[i] = Ack{Sequence: a.Sequence, Duplicate: a.Duplicate}
		case err := <-f.Err():
			return nil, fmt.Errorf("%w %s: %w", ErrPublish, msgs[i].Header.Get(jetstream.MsgIDHeader), err)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w %s: %v", ErrPublish, msgs[i].Header.Get(jetstream.MsgIDHeader), ctx.Err())
		}
	}
	return acks, nil
}
