package deadletter

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
)

// ErrInvalidTarget is returned for a re-drive to a sink, receiver or address
// that does not exist or cannot be delivered to; the message names the field
// (sink, receiver, to).
var ErrInvalidTarget = errors.New("invalid re-drive target")

// Address is the kind of ad-hoc destination a sink takes (to=).
type Address string

// Address kinds; "" is a sink that takes none.
const (
	AddressEmail        Address = "email"         // an addr-spec: cfo@acme.example
	AddressSlackChannel Address = "slack-channel" // #channel, or a channel or user id
)

// Roster is what re-drive validation asks about the sinks (the roster
// package keeps the answers in JetStream, published by each notifier).
type Roster interface {
	// Sinks lists the sinks known, sorted.
	Sinks(ctx context.Context) ([]string, error)
	// Adhoc tells whether sink is known, and which ad-hoc destination it takes.
	Adhoc(ctx context.Context, sink string) (kind Address, known bool, err error)
	// Receiver tells whether sink has a receiver of that name.
	Receiver(ctx context.Context, sink, receiver string) (bool, error)
}

// CheckTarget validates a re-drive's destination before anything is sent:
// the sink exists, and either the receiver exists or to is an address of
// the kind the sink takes.
func CheckTarget(ctx context.Context, r Roster, sink, receiver, to string) error {
	if sink == "" {
		return fmt.Errorf("%w: sink: required", ErrInvalidTarget)
	}
	kind, known, err := r.Adhoc(ctx, sink)
	if err != nil {
		return err
	}
	if !known {
		sinks, err := r.Sinks(ctx)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: sink: %s is not a sink that has started (known: %s)", ErrInvalidTarget, quote(sink), list(sinks))
	}
	if to != "" {
		if receiver != "" && receiver != AdhocReceiver {
			return fmt.Errorf("%w: receiver and to: give a receiver or an ad-hoc destination, not both", ErrInvalidTarget)
		}
		if kind == "" {
			return fmt.Errorf("%w: to: sink %s takes no ad-hoc destination (re-drive to one of its receivers)", ErrInvalidTarget, sink)
		}
		return CheckAddress(kind, to)
	}
	switch receiver {
	case "":
		return fmt.Errorf("%w: receiver: required (or to, an ad-hoc destination)", ErrInvalidTarget)
	case AdhocReceiver:
		return fmt.Errorf("%w: to: required with receiver %s", ErrInvalidTarget, AdhocReceiver)
	}
	ok, err := r.Receiver(ctx, sink, receiver)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: receiver: sink %s has no receiver %s%s", ErrInvalidTarget, sink, quote(receiver), Known(ctx, r, sink))
	}
	return nil
}

// Known names a sink's receivers, for a message about one that is not
// among them (" (its receivers: a, b)"), when the roster can list them.
func Known(ctx context.Context, r Roster, sink string) string {
	l, ok := r.(interface {
		Receivers(ctx context.Context, sink string) ([]string, error)
	})
	if !ok {
		return ""
	}
	names, err := l.Receivers(ctx, sink)
	if err != nil {
		return ""
	}
	return " (its receivers: " + list(names) + ")"
}

// maxAddress bounds an ad-hoc destination (RFC 5321's path limit).
const maxAddress = 254

var (
	slackName = regexp.MustCompile(`^#?[a-z0-9][a-z0-9._-]{0,79}$`)
	slackID   = regexp.MustCompile(`^[CGDUW][A-Z0-9]{8,20}$`)
)

// CheckAddress validates an ad-hoc destination of kind.
func CheckAddress(kind Address, to string) error {
	if len(to) > maxAddress {
		return fmt.Errorf("%w: to: longer than %d characters", ErrInvalidTarget, maxAddress)
	}
	if strings.ContainsFunc(to, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }) {
		return fmt.Errorf("%w: to: %s holds a control character", ErrInvalidTarget, quote(to))
	}
	switch kind {
	case AddressEmail:
		a, err := mail.ParseAddress(to)
		if err != nil || a.Name != "" || a.Address != to {
			return fmt.Errorf("%w: to: %s is not an email address (an addr-spec such as cfo@acme.example, no display name)", ErrInvalidTarget, quote(to))
		}
	case AddressSlackChannel:
		if !slackName.MatchString(to) && !slackID.MatchString(to) {
			return fmt.Errorf("%w: to: %s is not a Slack channel (#name: lowercase letters, digits, - _ and .; or a channel id)", ErrInvalidTarget, quote(to))
		}
	default:
		return fmt.Errorf("%w: to: no ad-hoc destination of kind %q", ErrInvalidTarget, kind)
	}
	return nil
}

// quote quotes s for an error message, bounded.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func list(s []string) string {
	if len(s) == 0 {
		return "none yet"
	}
	return strings.Join(slices.Sorted(slices.Values(s)), ", ")
}
