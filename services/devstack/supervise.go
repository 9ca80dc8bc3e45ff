package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// supervisor runs the stack's processes, restarts one that dies (with backoff),
// and stops them all with SIGTERM, then SIGKILL after a grace period.
type supervisor struct {
	log    *slog.Logger
	binDir string
	out    io.Writer

	mu    sync.Mutex
	procs map[string]*exec.Cmd
	wg    sync.WaitGroup
}

func newSupervisor(log *slog.Logger, binDir string) *supervisor {
	return &supervisor{log: log, binDir: binDir, out: os.Stdout, procs: map[string]*exec.Cmd{}}
}

func (s *supervisor) start(ctx context.Context, svc service) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		backoff := time.Second
		for ctx.Err() == nil {
			began := time.Now()
			err := s.runOnce(ctx, svc)
			if ctx.Err() != nil {
				return
			}
			if time.Since(began) > time.Minute {
				backoff = time.Second
			}
			s.log.Warn("service exited; restarting", "name", svc.Name, "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
}

func (s *supervisor) runOnce(ctx context.Context, svc service) error {
	cmd := exec.Command(filepath.Join(s.binDir, svc.Name), svc.Args...)
	cmd.Env = append(os.Environ(), svc.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches devstack, which drains in order
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.procs[svc.Name] = cmd
	s.mu.Unlock()
	var copying sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		copying.Add(1)
		go func() {
			defer copying.Done()
			prefixLines(s.out, r, svc.Name)
		}()
	}
	copying.Wait()
	err := cmd.Wait()
	s.mu.Lock()
	delete(s.procs, svc.Name)
	s.mu.Unlock()
	return err
}

var outMu sync.Mutex

// prefixLines copies r to w line by line, each line led by "[name] ".
func prefixLines(w io.Writer, r io.Reader, name string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		outMu.Lock()
		fmt.Fprintf(w, "[%s] %s\n", name, sc.Text())
		outMu.Unlock()
	}
}

func (s *supervisor) stopAll(grace time.Duration) {
	s.mu.Lock()
	for _, c := range s.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.mu.Lock()
		for name, c := range s.procs {
			s.log.Warn("service did not drain in time; killing", "name", name)
			_ = c.Process.Kill()
		}
		s.mu.Unlock()
		<-done
	}
}
