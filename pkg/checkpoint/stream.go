package checkpoint

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// Headers of a checkpoint message; its data is the signed payload.
const (
	HdrSignature = "Aw-Checkpoint-Signature"
	HdrPublicKey = "Aw-Checkpoint-Key"
)

// ErrNone is returned when no checkpoint exists.
var ErrNone = errors.New("no checkpoint")

// Subject is where the checkpoints of stream go: aw.checkpoints.<stream>.
func Subject(stream string) string { return eventbus.CheckpointRoot + stream }

// Msg is s as a message of the checkpoint stream.
func (s *Signed) Msg() *nats.Msg {
	h := nats.Header{}
	h.Set(HdrSignature, base64.StdEncoding.EncodeToString(s.Signature))
	h.Set(HdrPublicKey, base64.StdEncoding.EncodeToString(s.PublicKey))
	h.Set(jetstream.MsgIDHeader, "checkpoint:"+s.Hash())
	return &nats.Msg{Subject: Subject(s.cp.Stream), Header: h, Data: s.Payload}
}

// FromMsg reads a checkpoint message, verifying its signature.
func FromMsg(h nats.Header, data []byte) (*Signed, error) {
	sig, err := base64.StdEncoding.DecodeString(h.Get(HdrSignature))
	if err != nil {
		return nil, fmt.Errorf("%w: signature header: %v", ErrMalformed, err)
	}
	pub, err := base64.StdEncoding.DecodeString(h.Get(HdrPublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: key header: %v", ErrMalformed, err)
	}
	return Parse(data, sig, ed25519.PublicKey(pub))
}

// Publish stores s in AW_CHECKPOINTS, after the checkpoint at prevSeq (0: the
// first of its stream): a second signer that raced this one is refused
// rather than forking the sequence of checkpoints.
func Publish(ctx context.Context, js jetstream.JetStream, s *Signed, prevSeq uint64) (uint64, error) {
	m := s.Msg()
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(prevSeq, 10))
	ack, err := js.PublishMsg(ctx, m, jetstream.WithExpectStream(eventbus.StreamCheckpoints))
	if err != nil {
		return 0, fmt.Errorf("publish checkpoint: %w", err)
	}
	return ack.Sequence, nil
}

// Stored is a checkpoint with its place in AW_CHECKPOINTS.
type Stored struct {
	*Signed
	Seq uint64
}

// Latest is the newest checkpoint of stream (ErrNone when there is none).
func Latest(ctx context.Context, js jetstream.JetStream, stream string) (Stored, error) {
	s, err := js.Stream(ctx, eventbus.StreamCheckpoints)
	if err != nil {
		return Stored{}, fmt.Errorf("checkpoints: %w", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, Subject(stream))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Stored{}, ErrNone
	}
	if err != nil {
		return Stored{}, fmt.Errorf("checkpoints: %w", err)
	}
	return fromRaw(m)
}

// Get is the checkpoint at seq of AW_CHECKPOINTS.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (Stored, error) {
	s, err := js.Stream(ctx, eventbus.StreamCheckpoints)
	if err != nil {
		return Stored{}, fmt.Errorf("checkpoints: %w", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Stored{}, fmt.Errorf("%w at sequence %d", ErrNone, seq)
	}
	if err != nil {
		return Stored{}, fmt.Errorf("checkpoints: %w", err)
	}
	return fromRaw(m)
}

func fromRaw(m *jetstream.RawStreamMsg) (Stored, error) {
	s, err := FromMsg(m.Header, m.Data)
	if err != nil {
		return Stored{}, fmt.Errorf("checkpoint at sequence %d: %w", m.Sequence, err)
	}
	return Stored{Signed: s, Seq: m.Sequence}, nil
}
