package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// Tmpfs is a small tmpfs mounted over a node's store, so that the run can
// fill the node's disk and free it again.
type Tmpfs struct {
	Dir   string
	Bytes int64
}

// MountTmpfs mounts a tmpfs of size bytes on dir.
func MountTmpfs(dir string, size int64) (*Tmpfs, error) {
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10)+",mode=0750", "tmpfs", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount tmpfs on %s: %v: %s", dir, err, b)
	}
	return &Tmpfs{Dir: dir, Bytes: size}, nil
}

func (t *Tmpfs) filler() string { return filepath.Join(t.Dir, "chaos-filler") }

// Fill writes a file until the file system has no space left, and returns
// how much it wrote.
func (t *Tmpfs) Fill() (int64, error) {
	f, err := os.OpenFile(t.filler(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Write(chunk)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Free removes the filler.
func (t *Tmpfs) Free() error {
	err := os.Remove(t.filler())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Avail is the free space left.
func (t *Tmpfs) Avail() int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(t.Dir, &st) != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

// Close unmounts the tmpfs.
func (t *Tmpfs) Close() {
	_ = exec.Command("umount", "-l", t.Dir).Run()
}
