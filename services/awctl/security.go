package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/checkpoint"
	"github.com/accountwatch/accountwatch/pkg/deliverylog"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// The make run stack keeps its credentials here (relative to the repository
// root): awctl run from there finds its own identity and the signer's key.
const devCredentials = "data/credentials"

// devDefaults fills in, when nothing else is configured, the `make run`
// stack's seed of role and its checkpoint public key, if they exist.
func devDefaults(s *settings) {
	if s.User != "" || s.Token != "" || s.NKeySeedFile != "" || s.CredsFile != "" {
		return
	}
	if seed := filepath.Join(devCredentials, string(s.Role), eventbus.SeedFileName); fileExists(seed) {
		s.NKeySeedFile = seed
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// trustedKeys reads --key files, else AW_CHECKPOINT_PUBLIC_KEY_FILE's
// (setting), else the make run stack's public key.
func trustedKeys(files []string, setting string) ([]ed25519.PublicKey, error) {
	if len(files) == 0 {
		for _, f := range strings.Split(setting, ",") {
			if f = strings.TrimSpace(f); f != "" {
				files = append(files, f)
			}
		}
		if pub := filepath.Join(devCredentials, eventbus.PublicDir, checkpoint.PublicKeyName); len(files) == 0 && fileExists(pub) {
			files = []string{pub}
		}
	}
	var out []ed25519.PublicKey
	for _, f := range files {
		k, err := checkpoint.LoadPublicKey(f)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func verifyCmd(ctx context.Context, s settings, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stream := fs.String("stream", eventbus.StreamEvents, "the event stream to verify")
	output := fs.String("output", "table", "table or json")
	var files, keys listFlag
	fs.Var(&files, "checkpoint", "an exported checkpoint file the log must still hold (repeatable)")
	fs.Var(&keys, "key", "public key a checkpoint must be signed with (repeatable; default AW_CHECKPOINT_PUBLIC_KEY_FILE)")
	noState := fs.Bool("no-state", false, "do not compare the chain heads with AW_STATE")
	noStored := fs.Bool("no-stored-checkpoint", false, "do not check the newest checkpoint of AW_CHECKPOINTS")
	skew := fs.Duration("clock-skew", audit.DefaultSkew, "clock difference tolerated between the poller and the server")
	heads := fs.Bool("heads", false, "list every account's chain head (json output)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if !checkOutput("awctl verify", *output, stderr) {
		return exitUsage
	}
	opts := audit.Options{Stream: *stream, State: !*noState && *stream == eventbus.StreamEvents, Stored: !*noStored, Skew: *skew, Heads: *heads}
	var err error
	if opts.Trusted, err = trustedKeys(keys, s.PublicKeyFiles); err != nil {
		fmt.Fprintln(stderr, "awctl verify:", err)
		return exitUsage
	}
	for _, f := range files {
		cp, err := checkpoint.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, "awctl verify: --checkpoint", err)
			return exitUsage
		}
		opts.Checkpoints = append(opts.Checkpoints, audit.Checkpoint{Source: f, Signed: cp})
	}
	bus, ok := connect(ctx, s, stderr)
	if !ok {
		return exitFailed
	}
	defer bus.Close()
	bar := newProgressBar(stderr)
	opts.Progress = bar.update
	rep, err := audit.Verify(ctx, bus.JS, opts)
	bar.finish()
	if err != nil {
		fmt.Fprintln(stderr, "awctl verify:", err)
		return exitFailed
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printReport(stdout, rep)
	}
	if !rep.OK() {
		fmt.Fprintf(stderr, "awctl verify: %d problems (%s): the audit log is not intact\n", len(rep.Problems)+rep.Unlisted, strings.Join(problemKinds(rep), ", "))
		return exitFailed
	}
	note := stdout
	if *output == "json" {
		note = stderr // standard output holds the report alone
	}
	fmt.Fprintf(note, "intact: every chain whole, no sequence missing%s, %d checkpoints hold\n",
		map[bool]string{true: ", every head as AW_STATE records it", false: ""}[rep.StateChecked], len(rep.Checkpoints))
	return exitOK
}

func problemKinds(r audit.Report) []string {
	var out []string
	for _, pr := range r.Problems {
		if !slices.Contains(out, pr.Kind) {
			out = append(out, pr.Kind)
		}
	}
	return out
}

func printReport(w io.Writer, rep audit.Report) {
	fmt.Fprintf(w, "%s: %d events, sequences %d to %d, %d accounts, created %s\n", rep.Stream, rep.Events, rep.FirstSeq, rep.LastSeq, rep.Accounts, rep.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "  chain heads root %s\n", rep.Root)
	if rep.StateChecked {
		fmt.Fprintln(w, "  AW_STATE: compared with every chain head")
	}
	if len(rep.Checkpoints) == 0 {
		fmt.Fprintln(w, "  no signed checkpoint checked")
	}
	// Every cell escaped (describe.Printable): an account id is upstream text.
	for _, c := range rep.Checkpoints {
		verdict := "HOLDS"
		if !c.OK {
			verdict = "BROKEN"
		}
		fmt.Fprintf(w, "  checkpoint %s: %s (up to seq %d, signed %s by %s): %s\n", p(c.Source), verdict, c.LastSeq, c.Signed.Format(time.RFC3339), p(c.KeyID), p(c.Detail))
	}
	for _, pr := range rep.Problems {
		fmt.Fprintf(w, "  %-20s seq %-8d %s %s %s\n", pr.Kind, pr.Seq, p(pr.Account), p(pr.EventID), p(pr.Detail))
	}
	if rep.Unlisted > 0 {
		fmt.Fprintf(w, "  … and %d problems more\n", rep.Unlisted)
	}
}

func checkpointCmd(ctx context.Context, s settings, verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl checkpoint "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch verb {
	case "keygen":
		out := fs.String("out", "", "private key file to write (PKCS#8 PEM, 0600)")
		pub := fs.String("pub", "", "public key file (default: --out with .pub)")
		if err := fs.Parse(args); err != nil {
			return exitUsage
		}
		if *out == "" {
			fmt.Fprintln(stderr, "awctl checkpoint keygen: --out is required")
			return exitUsage
		}
		if *pub == "" {
			*pub = strings.TrimSuffix(*out, filepath.Ext(*out)) + ".pub"
		}
		k, err := checkpoint.GenerateKey(*out, *pub)
		if err != nil {
			fmt.Fprintln(stderr, "awctl checkpoint keygen:", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "signing key %s (give it to the auditor only: AW_CHECKPOINT_KEY_FILE)\npublic key  %s  %s\n", *out, *pub, checkpoint.Fingerprint(k))
		return exitOK
	case "export":
		seq := fs.Uint64("seq", 0, "the checkpoint's sequence in AW_CHECKPOINTS (default: the newest)")
		stream := fs.String("stream", eventbus.StreamEvents, "the event stream whose checkpoint to export")
		out := fs.String("output", "", "file to write (default: standard output)")
		var keys listFlag
		fs.Var(&keys, "key", "public key the checkpoint must be signed with (repeatable)")
		if err := fs.Parse(args); err != nil {
			return exitUsage
		}
		trusted, err := trustedKeys(keys, s.PublicKeyFiles)
		if err != nil {
			fmt.Fprintln(stderr, "awctl checkpoint export:", err)
			return exitUsage
		}
		bus, ok := connect(ctx, s, stderr)
		if !ok {
			return exitFailed
		}
		defer bus.Close()
		var st checkpoint.Stored
		if *seq > 0 {
			st, err = checkpoint.Get(ctx, bus.JS, *seq)
		} else {
			st, err = checkpoint.Latest(ctx, bus.JS, *stream)
		}
		if err == nil {
			err = st.Trusted(trusted)
		}
		if err != nil {
			fmt.Fprintln(stderr, "awctl checkpoint export:", err)
			return exitFailed
		}
		b, err := st.MarshalFile(st.Seq)
		if err != nil {
			fmt.Fprintln(stderr, "awctl checkpoint export:", err)
			return exitFailed
		}
		if *out == "" {
			stdout.Write(b)
		} else if err := os.WriteFile(*out, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "awctl checkpoint export:", err)
			return exitFailed
		}
		cp := st.Checkpoint()
		fmt.Fprintf(stderr, "checkpoint %s seq %d: %s up to seq %d, %d chain heads, root %s, signed %s by %s\n",
			eventbus.StreamCheckpoints, st.Seq, cp.Stream, cp.LastSeq, cp.Accounts, cp.Root, cp.Time.Format(time.RFC3339), cp.KeyID)
		return exitOK
	}
	fmt.Fprintf(stderr, "awctl: unknown command %q\n\n%s", "checkpoint "+verb, usage)
	return exitUsage
}

// provisionCmd is the admin's step: the streams and buckets, created or
// checked. Services never create them.
func provisionCmd(ctx context.Context, s settings, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	retention := fs.Duration("delivery-log-retention", 720*time.Hour, "retention of AW_DELIVERIES (the services' AW_DELIVERY_LOG_RETENTION)")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the server (a cluster electing its leaders)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	bus, err := eventbus.Connect(cctx, s.Config)
	if err != nil {
		fmt.Fprintln(stderr, "awctl provision:", err)
		return exitFailed
	}
	defer bus.Close()
	if err := bus.RequireAdmin(cctx); err != nil {
		fmt.Fprintln(stderr, "awctl provision:", err)
		return exitFailed
	}
	extra := deliverylog.StreamConfig(s.Config, *retention)
	// A cluster answers "no JetStream leader" for a while after it starts.
	for {
		err = bus.Provision(cctx, extra)
		if err == nil || errors.Is(err, eventbus.ErrConfigConflict) || cctx.Err() != nil {
			break
		}
		fmt.Fprintln(stderr, "awctl provision: retrying:", err)
		select {
		case <-cctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "awctl provision:", err)
		return exitFailed
	}
	var names []string
	for _, sc := range append(eventbus.StreamConfigs(s.Config), extra) {
		names = append(names, sc.Name)
	}
	for _, kc := range eventbus.BucketConfigs(s.Config) {
		names = append(names, kc.Bucket)
	}
	fmt.Fprintf(stdout, "provisioned (replicas %d): %s\n", s.Replicas, strings.Join(names, " "))
	return exitOK
}

// credentialsCmd writes a credentials directory: every role's nkey, the
// server's authorization include, and the checkpoint signing key. It keeps
// what exists, so running it again changes nothing.
func credentialsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awctl credentials", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the credentials directory")
	owner := fs.String("owner", "", "uid:gid to own the private files (containers that run services as another user)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "awctl credentials: --dir is required")
		return exitUsage
	}
	creds, err := eventbus.LoadCredentials(*dir, true)
	if err == nil {
		_, err = checkpoint.EnsureKey(*dir)
	}
	if err == nil && *owner != "" {
		err = chownTree(*dir, *owner)
	}
	if err != nil {
		fmt.Fprintln(stderr, "awctl credentials:", err)
		return exitFailed
	}
	pub, _ := checkpoint.LoadPublicKey(checkpoint.PublicKeyFile(*dir))
	fmt.Fprintf(stdout, "credentials in %s: one nkey per role (%s/<role>/%s), the server's include %s, the checkpoint key of the auditor (%s)\n",
		*dir, *dir, eventbus.SeedFileName, creds.AuthConfigFile(), checkpoint.Fingerprint(pub))
	return exitOK
}

func chownTree(dir, owner string) error {
	u, g, ok := strings.Cut(owner, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("--owner %q: want uid:gid", owner)
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
