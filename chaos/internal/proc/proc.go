// Package proc runs the chaos run's processes: a node or a service is started
// from its binary with its environment, its output appended to a log file,
// and can be killed, stopped, continued and started again.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is one restartable process.
type Proc struct {
	Name string
	Path string
	Args []string
	Env  []string
	// Netns runs the process inside a network namespace (ip netns exec).
	Netns string
	Log   string
	// OnExit, if set, is called when an incarnation exits; expected tells
	// whether Kill or Terminate ended it.
	OnExit func(expected bool, err error)

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
	// ending: Kill or Terminate was asked for this incarnation
	ending bool
	starts int
}

// ErrNotRunning is returned for a signal to a process that is not running.
var ErrNotRunning = errors.New("not running")

// Start starts the process (again); it must not be running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running", p.Name)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	path, args := p.Path, p.Args
	if p.Netns != "" {
		// ip netns exec execs the command after entering the namespace: the
		// pid is the command's, so signals reach it.
		path, args = "ip", append([]string{"netns", "exec", p.Netns, p.Path}, p.Args...)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C of the run reaches the run, which tears
	// everything down in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logf, "=== %s start %d\n", time.Now().Format(time.RFC3339Nano), p.starts+1)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	p.starts++
	p.cmd, p.stopped, p.ending = cmd, false, false
	exited := make(chan struct{})
	p.exited = exited
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== %s exit: %v\n", time.Now().Format(time.RFC3339Nano), err)
		logf.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil
		}
		expected, onExit := p.ending, p.OnExit
		p.mu.Unlock()
		close(exited)
		if onExit != nil {
			onExit(expected, err)
		}
	}()
	return nil
}

// Running reports whether the process runs (stopped by SIGSTOP included).
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Exited is closed when the current incarnation exits (nil when none runs).
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	return p.exited
}

// Starts counts the incarnations.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Pid is the running process's pid (0 when none runs).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Proc) signal(sig syscall.Signal) (chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, fmt.Errorf("%s: %w", p.Name, ErrNotRunning)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", p.Name, sig, err)
	}
	switch sig {
	case syscall.SIGKILL, syscall.SIGTERM:
		p.ending = true
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
	return p.exited, nil
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() error {
	exited, err := p.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-exited
	return nil
}

// Stop freezes the process (SIGSTOP).
func (p *Proc) Stop() error { _, err := p.signal(syscall.SIGSTOP); return err }

// Cont resumes a frozen process (SIGCONT).
func (p *Proc) Cont() error { _, err := p.signal(syscall.SIGCONT); return err }

// Terminate sends SIGTERM (SIGCONT first if frozen) and waits up to grace
// for the exit, then kills.
func (p *Proc) Terminate(grace time.Duration) {
	p.mu.Lock()
	frozen := p.stopped
	p.mu.Unlock()
	if frozen {
		_ = p.Cont()
	}
	exited, err := p.signal(syscall.SIGTERM)
	if err != nil {
		return
	}
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
	}
}
