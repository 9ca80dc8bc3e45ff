package drive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/pkg/eventbus"
)

// DoJSON sends in (if not nil) as JSON to url and decodes a 2xx answer
// into out (if not nil); any other answer is an error naming it.
func DoJSON(ctx context.Context, c *http.Client, method, url string, in, out any) error {
	var r io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		if len(b) > 4096 {
			b = b[:4096]
		}
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Records counts the account records of AW_STATE (not the connections'
// own "<provider>.<instance>.*" records): how many accounts have been read.
func Records(ctx context.Context, js jetstream.JetStream) (int, error) {
	kv, err := js.KeyValue(ctx, eventbus.BucketState)
	if err != nil {
		return 0, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for k := range lister.Keys() {
		if !strings.HasSuffix(k, ".*") {
			n++
		}
	}
	return n, nil
}

// Verify runs `awctl verify --output json` (the binary awctl, its
// environment env) and reads its report.
func Verify(ctx context.Context, awctl string, env []string) (ledger.Verify, error) {
	cmd := exec.CommandContext(ctx, awctl, "verify", "--output", "json")
	cmd.Env = append(cmd.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	var rep struct {
		Events       uint64            `json:"events"`
		Accounts     int               `json:"accounts"`
		StateChecked bool              `json:"state_checked"`
		Checkpoints  []json.RawMessage `json:"checkpoints"`
		Problems     []json.RawMessage `json:"problems"`
		Unlisted     int               `json:"problems_unlisted"`
	}
	text := out.String()
	if err := json.NewDecoder(&out).Decode(&rep); err != nil {
		return ledger.Verify{}, fmt.Errorf("awctl verify: %v, %v: %s", runErr, err, errOut.String())
	}
	problems := len(rep.Problems) + rep.Unlisted
	return ledger.Verify{Intact: runErr == nil && problems == 0, Events: rep.Events, Accounts: rep.Accounts, Problems: problems,
		StateChecked: rep.StateChecked, Checkpoints: len(rep.Checkpoints), Output: text}, nil
}

// Tallier is what a receiver reports (receivers.Tally).
type Tallier interface {
	Accepted() map[string]int
	Attempts() (attempts, refused int)
}

// SinkOf is the ledger's view of the receiver t of the sink name.
func SinkOf(name string, t Tallier) ledger.Sink {
	a, ref := t.Attempts()
	return ledger.Sink{Name: name, Accepted: t.Accepted(), Attempts: a, Refused: ref}
}

// Outstanding counts the deliveries still owed: each event of the stream
// that a sink has not accepted yet, once per sink.
func Outstanding(events []ledger.Event, sinks []ledger.Sink) int {
	n := 0
	for _, s := range sinks {
		for _, e := range events {
			if s.Accepted[e.ID] == 0 {
				n++
			}
		}
	}
	return n
}

// FreeAddr is a loopback address no one listens on (yet).
func FreeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WriteFile writes content to dir/name (owner only) and returns its path.
func WriteFile(dir, name, content string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		panic(err)
	}
	return p
}
