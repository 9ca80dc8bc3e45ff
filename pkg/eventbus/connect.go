package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/pkg/redact"
)

// ErrConnect is returned when no connection to NATS could be made.
var ErrConnect = errors.New("nats connect")

// Bus is a connection to JetStream, and the embedded server behind it if any.
type Bus struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	Cfg Config

	server *server.Server
	creds  *Credentials
	// refused hears of every operation the server refused this identity.
	refused chan error
}

// Connect joins cfg.URL with cfg's credentials, or starts an embedded
// JetStream server on cfg.DataDir when cfg.URL is empty. The embedded server
// knows every role by the nkeys in CredentialsDir (generated on first use);
// its host connects in-process as cfg.Role, or as admin when no role is set.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := DefaultConfig()
	if cfg.PingInterval == 0 {
		cfg.PingInterval = def.PingInterval
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = def.PublishTimeout
	}
	b := &Bus{Cfg: cfg, refused: make(chan error, 16)}
	url := cfg.URL
	var auth []nats.Option
	if url == "" {
		creds, err := LoadCredentials(cfg.CredentialsDir(), true)
		if err != nil {
			return nil, err
		}
		s, err := StartEmbedded(cfg, creds)
		if err != nil {
			return nil, err
		}
		b.server, b.creds = s, creds
		if b.Cfg.Role == "" {
			b.Cfg.Role = RoleAdmin
		}
		auth = []nats.Option{nats.InProcessServer(s), creds.option(b.Cfg.Role)}
		url = s.ClientURL()
	} else {
		var err error
		if auth, err = authOptions(cfg); err != nil {
			return nil, err
		}
		auth = append(auth, nats.RetryOnFailedConnect(false))
	}
	if err := b.dial(ctx, url, auth); err != nil {
		b.shutdownServer()
		return nil, err
	}
	return b, nil
}

func (b *Bus) dial(ctx context.Context, url string, auth []nats.Option) error {
	opts := append([]nats.Option{
		nats.Name(b.Cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// A server that stops answering (frozen, or partitioned away without
		// a reset) is left after three pings, for another of the cluster.
		nats.PingInterval(b.Cfg.PingInterval),
		nats.MaxPingsOutstanding(3),
		nats.ErrorHandler(b.logRefusals),
	}, auth...)
	if b.Cfg.Role != "" {
		opts = append(opts, nats.CustomInboxPrefix(b.Cfg.Role.InboxPrefix()))
	}
	nc, err := connectWithContext(ctx, url, opts)
	if err != nil {
		return fmt.Errorf("%w to %s: %v", ErrConnect, redact.String(url), err)
	}
	b.NC = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(b.Cfg.MaxPending), jetstream.WithPublishAsyncTimeout(b.Cfg.PublishTimeout))
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	b.JS = js
	return nil
}

// logRefusals says what the server refused: a permission violation reaches
// the client only here (the request itself just waits for its timeout).
func (b *Bus) logRefusals(_ *nats.Conn, _ *nats.Subscription, err error) {
	log := b.Cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if errors.Is(err, nats.ErrPermissionViolation) {
		log.Error("NATS refused an operation this identity may not do", "role", b.Cfg.Role, "err", err)
		select {
		case b.refused <- err:
		default:
		}
		return
	}
	log.Warn("NATS asynchronous error", "err", err)
}

// ErrNotAdmin is returned by RequireAdmin for credentials that are not the admin's.
var ErrNotAdmin = errors.New("not the admin identity")

// RequireAdmin checks, before an admin's work, that the server takes this
// connection for the admin: a refused request would otherwise only time out.
func (b *Bus) RequireAdmin(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		_, err := b.JS.AccountInfo(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotAdmin, err)
		}
		return nil
	case err := <-b.refused:
		return fmt.Errorf("%w: the server refused it (%v): use the admin's seed (AW_NATS_NKEY_SEED_FILE)", ErrNotAdmin, err)
	}
}

// roleOf is the role a connection was made as, read from its inbox prefix.
func roleOf(nc *nats.Conn) Role {
	r, ok := strings.CutPrefix(nc.Opts.InboxPrefix, "_INBOX.")
	if !ok {
		return ""
	}
	return Role(r)
}

// connectWithContext retries the first connection until ctx ends, so that a
// service started before its server (docker compose) waits instead of dying.
func connectWithContext(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func authOptions(cfg Config) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("AW_NATS_NKEY_SEED_FILE: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.CredsFile != "" {
		if _, err := os.Stat(cfg.CredsFile); err != nil {
			return nil, fmt.Errorf("AW_NATS_CREDS_FILE: %w", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	if cfg.TLSFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	return opts, nil
}

// StartEmbedded starts a nats-server with JetStream storing in cfg.DataDir,
// whose users are the roles of creds with their permissions.
func StartEmbedded(cfg Config, creds *Credentials) (*server.Server, error) {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("AW_DATA_DIR: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("AW_DATA_DIR: %w", err)
	}
	opts := &server.Options{
		ServerName: "accountwatch-embedded",
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
		Nkeys:      creds.Users(),
	}
	if cfg.Listen == "" || cfg.Listen == "none" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("AW_NATS_LISTEN: %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < -1 || p > 65535 {
			return nil, fmt.Errorf("AW_NATS_LISTEN: %q: bad port", cfg.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats-server on %s did not become ready (is %s in use, or %s locked by another process?)", cfg.Listen, cfg.Listen, dir)
	}
	return s, nil
}

// Embedded reports whether the bus runs its own server.
func (b *Bus) Embedded() bool { return b.server != nil }

// ClientURL is where other processes reach the embedded server ("" when it
// listens in-process only, or when the bus joined an external server).
func (b *Bus) ClientURL() string {
	if b.server == nil || b.server.Addr() == nil {
		return ""
	}
	return b.server.ClientURL()
}

// Close drains the connection (pending publishes and acks complete) and stops
// the embedded server.
func (b *Bus) Close() {
	if b.NC != nil {
		done := make(chan struct{})
		b.NC.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := b.NC.Drain(); err == nil {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
		}
		b.NC.Close()
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
	}
}

// ErrRoleless is returned by Open for a configuration without a service role.
var ErrRoleless = errors.New("a service connects as its own role")

// Open is the start of every service, within a minute: it connects as
// cfg.Role and checks that every stream and bucket the role uses exists as
// this version expects (ErrNotProvisioned or ErrConfigConflict otherwise);
// a service never creates, updates or deletes a stream. With no cfg.URL it
// hosts the embedded server: it provisions as admin (extra streams too, such
// as the delivery log), then connects in-process as cfg.Role for its work.
func Open(ctx context.Context, cfg Config, extra ...jetstream.StreamConfig) (*Bus, error) {
	if !cfg.Role.Valid() || cfg.Role == RoleAdmin {
		return nil, fmt.Errorf("%w, not %q", ErrRoleless, cfg.Role)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if cfg.URL != "" {
		b, err := Connect(ctx, cfg)
		if err != nil {
			return nil, err
		}
		if err := Require(ctx, b.JS, cfg, cfg.Role); err != nil {
			b.Close()
			return nil, err
		}
		return b, nil
	}
	admin := cfg
	admin.Role = RoleAdmin
	host, err := Connect(ctx, admin)
	if err != nil {
		return nil, err
	}
	if err := Provision(ctx, host.JS, cfg, extra...); err != nil {
		host.Close()
		return nil, err
	}
	host.NC.Close()
	b := &Bus{Cfg: cfg, server: host.server, creds: host.creds, refused: make(chan error, 16)}
	if err := b.dial(ctx, host.server.ClientURL(), []nats.Option{nats.InProcessServer(host.server), host.creds.option(cfg.Role)}); err != nil {
		b.shutdownServer()
		return nil, err
	}
	return b, nil
}

// SeedFile is where the embedded server's credentials keep r's seed, for a
// process that joins it ("" when the bus joined an external server).
func (b *Bus) SeedFile(r Role) string {
	if b.creds == nil {
		return ""
	}
	return b.creds.SeedFile(r)
}

// Credentials are the embedded server's (nil when the bus joined an external server).
func (b *Bus) Credentials() *Credentials { return b.creds }

// Check is a readiness check: an error while the connection is down.
func (b *Bus) Check(context.Context) error {
	if !b.NC.IsConnected() {
		return errors.New("not connected to NATS")
	}
	return nil
}
