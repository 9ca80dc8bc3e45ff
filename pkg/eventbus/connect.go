package eventbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
}

// Connect joins cfg.URL, or starts an embedded JetStream server on cfg.DataDir
// when cfg.URL is empty.
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
	b := &Bus{Cfg: cfg}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// A server that stops answering (frozen, or partitioned away without
		// a reset) is left after three pings, for another of the cluster.
		nats.PingInterval(cfg.PingInterval),
		nats.MaxPingsOutstanding(3),
	}
	url := cfg.URL
	if url == "" {
		s, err := StartEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.server = s
		opts = append(opts, nats.InProcessServer(s))
		url = s.ClientURL()
	} else {
		auth, err := authOptions(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
		opts = append(opts, nats.RetryOnFailedConnect(false))
	}
	nc, err := connectWithContext(ctx, url, opts)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("%w to %s: %v", ErrConnect, redact.String(url), err)
	}
	b.NC = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxPending), jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b.JS = js
	return b, nil
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

// StartEmbedded starts a nats-server with JetStream storing in cfg.DataDir.
func StartEmbedded(cfg Config) (*server.Server, error) {
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

// Open connects (or starts the embedded server) and provisions the streams
// and buckets, within a minute: the start of every service.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Provision(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Check is a readiness check: an error while the connection is down.
func (b *Bus) Check(context.Context) error {
	if !b.NC.IsConnected() {
		return errors.New("not connected to NATS")
	}
	return nil
}
