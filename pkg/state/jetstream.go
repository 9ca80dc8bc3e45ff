package state

import "github.com/nats-io/nats.go/jetstream"

// JetStream is the context the store was opened with: a caller that
// commits through the store can read the events it committed.
func (s *Store) JetStream() jetstream.JetStream { return s.js }
