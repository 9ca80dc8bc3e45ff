// Package drive makes the chaos run's upstream changes: a world of accounts on
// upstream-sim (ActivePlatform status and debt, BSS HostingStatus and
// CreditLimitStatus, CAMS business profiles), changed through the
// simulator's admin API in a closed loop (an account changes again only once
// the event of its last change is in the stream, so that no change can hide
// another), a canary account whose changes time the pipeline end to end, and
// probes that publish straight to a replicated stream.
package drive

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
	"github.com/accountwatch/accountwatch/pkg/sim"
)

// Connection names of the poller configuration.
const (
	ConnAP   = "ap-chaos"
	ConnBSS  = "bss-chaos"
	ConnCAMS = "cams-chaos"
	// Credentials of the seed.
	APToken      = "chaos-ap-token"
	AccessKeyID  = "LTAIchaoskey"
	AccessSecret = "chaos-secret"
	Space        = "293483938849"
)

type kind int

const (
	kindAP kind = iota
	kindBSS
	kindCAMS
)

// Account is one scripted account and its current upstream values.
type Account struct {
	Key  ledger.Key
	kind kind
	n    int // changes made
	// ActivePlatform
	id     int64
	status int // index into apStatuses
	debt   int // in units of debtStep
	// BSS
	uid             string
	hosting, credit int
	// CAMS
	number string
	desc   string
}

var (
	apStatuses = []string{"active", "credit hold", "administrative_hold"}
	hostings   = []string{"TRUSTEESHIP", "FREEZE"}
	credits    = []string{"Thaw", "Freeze"}
)

// debtStep is above the poller's policy.debt_step (50): every move is reported.
const debtStep = 75

// World is the run's accounts; Canary is the last ActivePlatform one.
// Late is an ActivePlatform account the simulator has from the start but
// the watch list gets only at the end of the run (awctl watch add): the
// poller's watch-list watcher must still follow the bucket after the faults.
type World struct {
	Accounts []*Account
	Canary   *Account
	Late     *Account
}

// NewWorld makes ap ActivePlatform accounts (and the canary), bss BSS
// customers and cams CAMS numbers.
func NewWorld(ap, bss, cams int) *World {
	w := &World{}
	for i := range ap + 1 {
		id := int64(7_000_001 + i)
		w.Accounts = append(w.Accounts, &Account{Key: ledger.Key{Provider: "activeplatform", Instance: ConnAP, Account: strconv.FormatInt(id, 10)}, kind: kindAP, id: id})
	}
	w.Canary = w.Accounts[ap]
	w.Late = &Account{Key: ledger.Key{Provider: "activeplatform", Instance: ConnAP, Account: "7900001"}, kind: kindAP, id: 7_900_001}
	for i := range bss {
		uid := strconv.Itoa(8_000_001 + i)
		w.Accounts = append(w.Accounts, &Account{Key: ledger.Key{Provider: "alibaba-bss", Instance: ConnBSS, Account: uid}, kind: kindBSS, uid: uid})
	}
	for i := range cams {
		num := strconv.Itoa(861_390_000_001 + i)
		w.Accounts = append(w.Accounts, &Account{Key: ledger.Key{Provider: "alibaba-cams", Instance: ConnCAMS, Account: num}, kind: kindCAMS, number: num, desc: "chaos line " + num})
	}
	return w
}

// Seed is the simulator's seed for the world.
func (w *World) Seed() *sim.Seed {
	s := &sim.Seed{}
	s.ActivePlatform.Tokens = []string{APToken}
	s.ActivePlatform.MaxPerPage = 500
	s.Alibaba.Mpk = "1051360339779133"
	s.Alibaba.Credentials = []sim.Credential{{AccessKeyID: AccessKeyID, AccessKeySecret: AccessSecret}}
	space := sim.CustSpace{ID: Space}
	zero := "0.00"
	for _, a := range append(append([]*Account{}, w.Accounts...), w.Late) {
		switch a.kind {
		case kindAP:
			s.ActivePlatform.Accounts = append(s.ActivePlatform.Accounts, sim.APAccount{ID: a.id, Name: "Chaos " + a.Key.Account, Status: apStatuses[0], Balance: &zero, CurrentDebt: &zero})
		case kindBSS:
			s.Alibaba.Customers = append(s.Alibaba.Customers, sim.BSSCustomer{UID: a.uid, LoginEmail: "ops-" + a.uid + "@partner.example", HostingStatus: hostings[0], CreditLimitStatus: credits[0], AccountType: "1"})
		case kindCAMS:
			space.Phones = append(space.Phones, sim.Phone{Number: a.number, VerifiedName: "Chaos " + a.number, Status: "CONNECTED",
				Profile: sim.Profile{Vertical: "RETAIL", Description: a.desc, Email: "support@chaos.example", Address: "1 Chaos Way", About: "chaos"}})
		}
	}
	s.Alibaba.CustSpaces = []sim.CustSpace{space}
	return s
}

// PollerConfig is the poller's YAML for the world on the simulator at addr.
func (w *World) PollerConfig(addr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `connections:
  - {name: %s, provider: activeplatform, url: "http://%s", api_token: %s, interval: 1s, jitter: 0.1, full_scan_every: 5, per_page: 100, timeout: 5s}
  - {name: %s, provider: alibaba-bss, endpoint: "%s", protocol: http, access_key_id: %s, access_key_secret: %s, interval: 1s, jitter: 0.1, timeout: 5s}
  - {name: %s, provider: alibaba-cams, endpoint: "%s", protocol: http, access_key_id: %s, access_key_secret: %s, spaces: ["%s"], interval: 1s, jitter: 0.1, timeout: 5s}
policy:
  debt_step: "50"
  degraded_after: 3
watch:
`, ConnAP, addr, APToken, ConnBSS, addr, AccessKeyID, AccessSecret, ConnCAMS, addr, AccessKeyID, AccessSecret, Space)
	conn := map[kind]string{kindAP: ConnAP, kindBSS: ConnBSS, kindCAMS: ConnCAMS}
	for _, a := range w.Accounts {
		space := ""
		if a.kind == kindCAMS {
			space = ", space: \"" + Space + "\""
		}
		fmt.Fprintf(&b, "  - {connection: %s, account: \"%s\"%s}\n", conn[a.kind], a.Key.Account, space)
	}
	return b.String()
}

// next is the account's next change: the change as its event will say it,
// and the admin API call that makes it.
func (a *Account) next() (c ledger.Change, path string, set map[string]any) {
	switch a.kind {
	case kindAP:
		if a.n%2 == 0 {
			from := apStatuses[a.status]
			a.status = (a.status + 1) % len(apStatuses)
			to := apStatuses[a.status]
			c = ledger.Change{Type: "account.status.changed", Field: "status", From: from, To: to}
			set = map[string]any{"status": to}
		} else {
			// 0, 75, …, 300, then back down: every move one step
			from := a.debt
			if (a.n/2)%8 < 4 {
				a.debt++
			} else {
				a.debt--
			}
			c = ledger.Change{Type: "account.debt.changed", Field: "current_debt", From: money(from), To: money(a.debt)}
			set = map[string]any{"current_debt": money(a.debt)}
		}
		path = "/admin/activeplatform/accounts/" + a.Key.Account
	case kindBSS:
		if a.n%2 == 0 {
			from := hostings[a.hosting]
			a.hosting = 1 - a.hosting
			c = ledger.Change{Type: "account.hosting_status.changed", Field: "HostingStatus", From: from, To: hostings[a.hosting]}
			set = map[string]any{"hosting_status": hostings[a.hosting]}
		} else {
			from := credits[a.credit]
			a.credit = 1 - a.credit
			c = ledger.Change{Type: "account.credit_limit_status.changed", Field: "CreditLimitStatus", From: from, To: credits[a.credit]}
			set = map[string]any{"credit_limit_status": credits[a.credit]}
		}
		path = "/admin/bss/customers/" + a.uid
	case kindCAMS:
		from := a.desc
		a.desc = fmt.Sprintf("chaos line %s rev %d", a.number, a.n+1)
		c = ledger.Change{Type: "phone_profile.changed", Field: "Description", From: from, To: a.desc}
		set = map[string]any{"Description": a.desc}
		path = "/admin/cams/" + Space + "/" + a.number
	}
	a.n++
	c.Key = a.Key
	return c, path, set
}

func money(steps int) string { return strconv.Itoa(steps*debtStep) + ".00" }
