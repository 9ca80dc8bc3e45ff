package sink

import (
	"fmt"

	"github.com/accountwatch/accountwatch/pkg/config"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/route"
)

// FileReceiver is a receiver as a notifier's YAML file declares it (a Slack
// channel, a set of addresses).
type FileReceiver interface {
	// Runtime is the receiver as the runtime consumes and paces it.
	Runtime() Receiver
	// Validate checks the notifier's own fields.
	Validate() error
}

// File is a notifier's YAML file: its receivers, the routes and time
// intervals of its routing tree, and console links per instance.
type File[R FileReceiver] struct {
	route.Config `yaml:",inline"`
	Receivers    []R `yaml:"receivers"`
	// Links are console URL templates per instance, {account} the placeholder.
	Links describe.Links `yaml:"links"`
}

// LoadFile reads the YAML file at path into f, or keeps f (the notifier's
// default, named by name in errors) when path is empty; checks every
// receiver and builds the routing tree. Errors name the file and the key.
func LoadFile[R FileReceiver](path, name string, f *File[R]) (*route.Tree, error) {
	if path != "" {
		if err := config.LoadYAML(path, f); err != nil {
			return nil, err
		}
		name = path
	}
	names := make([]string, 0, len(f.Receivers))
	for i, r := range f.Receivers {
		rc := r.Runtime()
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %s: receivers[%d] (%s): %v", config.ErrInvalid, name, i, rc.Name, err)
		}
		if rc.RateLimit < 0 || rc.Burst < 0 {
			return nil, fmt.Errorf("%w: %s: receivers[%d] (%s): rate_limit and burst must be >= 0", config.ErrInvalid, name, i, rc.Name)
		}
		names = append(names, rc.Name)
	}
	return Routing(name, f.Config, names)
}

// RuntimeReceivers are the file's receivers as the runtime takes them.
func (f *File[R]) RuntimeReceivers() []Receiver {
	out := make([]Receiver, len(f.Receivers))
	for i, r := range f.Receivers {
		out[i] = r.Runtime()
	}
	return out
}
