// Package opstest holds what tests of a service's process-level output need.
package opstest

import (
	"bytes"
	"sync"
)

// Buffer collects what a service writes (its log, a local sink) while the
// test reads it: safe for concurrent writes and reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
