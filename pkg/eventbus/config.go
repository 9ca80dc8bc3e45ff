// Package eventbus is the JetStream plumbing: connecting to NATS (or starting an
// embedded server), provisioning the stream, dead-letter stream and KV buckets,
// encoding events as CloudEvents NATS messages, and publishing them. It knows the
// event model, never a provider.
package eventbus

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/accountwatch/accountwatch/pkg/config"
)

// Config is the NATS connection and provisioning configuration, read by mains
// through envconfig with the AW_ prefix (NATS_URL etc. also work unprefixed).
type Config struct {
	// URL of an external server or cluster (comma-separated). Empty starts an
	// embedded server with JetStream on DataDir.
	URL      string `envconfig:"NATS_URL"`
	User     string `envconfig:"NATS_USER"`
	Password string `envconfig:"NATS_PASSWORD" secret:"true"`
	Token    string `envconfig:"NATS_TOKEN" secret:"true"`
	// NKeySeedFile and CredsFile are paths to an nkey seed or a .creds file.
	NKeySeedFile string `envconfig:"NATS_NKEY_SEED_FILE"`
	CredsFile    string `envconfig:"NATS_CREDS_FILE"`
	// TLS: a CA bundle to verify the server, and a client certificate for mutual TLS.
	TLSCA   string `envconfig:"NATS_TLS_CA"`
	TLSCert string `envconfig:"NATS_TLS_CERT"`
	TLSKey  string `envconfig:"NATS_TLS_KEY"`
	// TLSFirst performs the TLS handshake before the NATS INFO (for TLS-terminating proxies).
	TLSFirst bool `envconfig:"NATS_TLS_HANDSHAKE_FIRST"`

	// DataDir is the embedded server's JetStream store.
	DataDir string `envconfig:"DATA_DIR" default:"./data"`
	// Listen is where the embedded server accepts other processes ("host:port");
	// "none" keeps it in-process only.
	Listen string `envconfig:"NATS_LISTEN" default:"127.0.0.1:4222"`
	// SyncAlways fsyncs every write of the embedded server: an acknowledged event
	// survives a power cut. A 3-node cluster with 3 replicas can use the server default.
	SyncAlways bool `envconfig:"NATS_SYNC_ALWAYS" default:"true"`

	Replicas int `envconfig:"STREAM_REPLICAS" default:"1"`
	// DedupWindow must cover a poller restart plus one poll interval.
	DedupWindow time.Duration `envconfig:"STREAM_DEDUP_WINDOW" default:"15m"`
	// Retention of the audit log by age (default 7 years).
	Retention time.Duration `envconfig:"STREAM_RETENTION" default:"61362h"`
	// DeadLetterRetention of the dead-letter stream; 0 keeps dead letters until re-driven.
	DeadLetterRetention time.Duration `envconfig:"DLQ_RETENTION" default:"0"`
	// MaxPending bounds the pipelined (async) publishes in flight.
	MaxPending int `envconfig:"PUBLISH_MAX_PENDING" default:"4096"`
	// PublishTimeout bounds the wait for the stream's acknowledgement of a
	// pipelined publish: one that never comes (its server frozen, or the
	// stream's leader lost with the message) fails, and is published again
	// (its id deduplicates it) instead of holding its publisher.
	PublishTimeout time.Duration `envconfig:"PUBLISH_TIMEOUT" default:"5s"`
	// PingInterval is how often the client asks its server for a sign of
	// life; after three unanswered pings it moves to another server of the
	// cluster. The client library's default, two minutes, leaves a service
	// on a frozen or cut-off server for several minutes.
	PingInterval time.Duration `envconfig:"NATS_PING_INTERVAL" default:"5s"`
	// Name identifies the client connection in server monitoring.
	Name string `envconfig:"NATS_CLIENT_NAME"`

	// Role is the identity the program connects as, set by its main, never by
	// the environment: it picks the inbox its permissions allow and, on the
	// embedded server, the user it connects as.
	Role Role `ignored:"true"`
	// Logger hears what the server refused this identity (slog.Default when nil).
	Logger *slog.Logger `ignored:"true"`
}

// CredentialsDir is where the embedded server keeps every role's nkey.
func (c Config) CredentialsDir() string { return filepath.Join(c.DataDir, "credentials") }

// DefaultConfig is Config with the defaults of its struct tags, for tests and tools.
func DefaultConfig() Config {
	var c Config
	if err := config.Defaults(&c); err != nil {
		panic(err) // a default tag that does not parse: a bug caught by every test
	}
	return c
}

// Validate reports the first wrong value, naming its key.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("AW_STREAM_REPLICAS: %d (want 1 to 5)", c.Replicas))
	}
	if c.DedupWindow <= 0 {
		errs = append(errs, fmt.Errorf("AW_STREAM_DEDUP_WINDOW: %s (want > 0)", c.DedupWindow))
	}
	if c.Retention < 0 || c.Retention > 0 && c.Retention < c.DedupWindow {
		errs = append(errs, fmt.Errorf("AW_STREAM_RETENTION: %s (want 0 for unlimited, or at least the dedup window %s)", c.Retention, c.DedupWindow))
	}
	if c.DeadLetterRetention < 0 {
		errs = append(errs, fmt.Errorf("AW_DLQ_RETENTION: %s (want >= 0)", c.DeadLetterRetention))
	}
	if c.MaxPending < 1 {
		errs = append(errs, fmt.Errorf("AW_PUBLISH_MAX_PENDING: %d (want >= 1)", c.MaxPending))
	}
	if c.PublishTimeout < 0 {
		errs = append(errs, fmt.Errorf("AW_PUBLISH_TIMEOUT: %s (want > 0; 0 for the default)", c.PublishTimeout))
	}
	if c.PingInterval < 0 {
		errs = append(errs, fmt.Errorf("AW_NATS_PING_INTERVAL: %s (want > 0; 0 for the default)", c.PingInterval))
	}
	if c.URL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("AW_DATA_DIR: empty (the embedded server needs a store)"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("AW_NATS_TLS_CERT and AW_NATS_TLS_KEY: set both or neither"))
	}
	if c.Role != "" && !c.Role.Valid() {
		errs = append(errs, fmt.Errorf("NATS role %q: want one of %v", c.Role, Roles()))
	}
	if c.User != "" && c.Token != "" {
		errs = append(errs, errors.New("AW_NATS_USER and AW_NATS_TOKEN: choose one authentication"))
	}
	return errors.Join(errs...)
}
