package cluster

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Netns is a network namespace joined to this machine by a veth pair: the
// node inside it is reached at NsIP, the nodes outside listen on HostIP (an
// address of the host end, which stays local to this machine whatever the
// link does). Taking the namespace's end of the link down partitions the
// node inside from every peer and client, silently: their packets are
// dropped, nobody gets a reset.
type Netns struct {
	Name, HostIf, NsIf string
	HostIP, NsIP       string
	nextPort           int
}

// Capability reports whether this process may make network namespaces:
// the CAP_SYS_ADMIN and CAP_NET_ADMIN capabilities, which root has unless a
// container took them away. HaveIP tells whether the ip tool is installed.
func Capability() (bool, string) {
	eff, err := effectiveCaps()
	if err != nil {
		return false, "capabilities unreadable: " + err.Error()
	}
	const capNetAdmin, capSysAdmin = 12, 21
	if eff&(1<<capNetAdmin) == 0 || eff&(1<<capSysAdmin) == 0 {
		return false, "this process lacks CAP_NET_ADMIN or CAP_SYS_ADMIN (not root, or a container without them)"
	}
	return true, ""
}

// HaveIP reports whether iproute2's ip is installed.
func HaveIP() bool {
	_, err := exec.LookPath("ip")
	return err == nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff line")
}

func ip(args ...string) error {
	if b, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

// NewNetns makes a namespace named after tag (unique per run: the pid) with a
// /24 of 10.213.0.0/16 that no interface of this machine uses yet.
func NewNetns(tag int) (*Netns, error) {
	out, err := exec.Command("ip", "-o", "-4", "addr").Output()
	if err != nil {
		return nil, fmt.Errorf("ip addr: %w", err)
	}
	subnet := -1
	for i := range 250 {
		s := (tag + i) % 250
		if !strings.Contains(string(out), fmt.Sprintf(" 10.213.%d.", s)) {
			subnet = s
			break
		}
	}
	if subnet < 0 {
		return nil, fmt.Errorf("no free subnet in 10.213.0.0/16")
	}
	n := &Netns{
		Name:   fmt.Sprintf("awchaos%d", tag),
		HostIf: fmt.Sprintf("awc%dh", tag%100000), NsIf: fmt.Sprintf("awc%dn", tag%100000),
		HostIP: fmt.Sprintf("10.213.%d.1", subnet), NsIP: fmt.Sprintf("10.213.%d.2", subnet),
		nextPort: 4222,
	}
	_ = ip("netns", "del", n.Name) // left by an earlier run that had this pid and was killed
	steps := [][]string{
		{"netns", "add", n.Name},
		{"link", "add", n.HostIf, "type", "veth", "peer", "name", n.NsIf},
		{"link", "set", n.NsIf, "netns", n.Name},
		{"addr", "add", n.HostIP + "/24", "dev", n.HostIf},
		{"link", "set", n.HostIf, "up"},
		{"-n", n.Name, "addr", "add", n.NsIP + "/24", "dev", n.NsIf},
		{"-n", n.Name, "link", "set", n.NsIf, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *Netns) ports(k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n.nextPort
		n.nextPort++
	}
	return out
}

// Partition cuts the namespace off: its end of the link goes down.
func (n *Netns) Partition() error { return ip("-n", n.Name, "link", "set", n.NsIf, "down") }

// Heal brings the link back.
func (n *Netns) Heal() error { return ip("-n", n.Name, "link", "set", n.NsIf, "up") }

// Close deletes the namespace, and with it the veth pair.
func (n *Netns) Close() {
	_ = ip("netns", "del", n.Name)
	_ = ip("link", "del", n.HostIf) // gone with the namespace, unless it never moved there
}
