package conform

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/accountwatch/accountwatch/chaos/internal/ledger"
)

// recoveries and holds are the documents' meaning of the states an enum
// change reaches: reaching a working state is a recovery (severity info),
// reaching a blocked or frozen one wants attention (warning or critical).
// ActivePlatform GetAccountInfoByID: active is "available for any possible
// operation"; administrative hold, credit hold and deleted block it. BSS
// GetCustomerAccountInfo: TRUSTEESHIP "hosted" (the normal state), FREEZE
// "frozen"; Thaw "unfrozen", Freeze "frozen". TrusteeshipCancel ("not
// hosted") is left to policy.
var (
	recoveries = map[string]bool{"status=active": true, "HostingStatus=trusteeship": true, "CreditLimitStatus=thaw": true, "CreditLimitStatus=trusteeship": true}
	holds      = map[string]bool{"status=administrative_hold": true, "status=credit_hold": true, "status=deleted": true,
		"HostingStatus=freeze": true, "CreditLimitStatus=freeze": true}
)

// CheckMeaning holds each paired event to what the documents say its
// change means: its severity (see recoveries and holds), and the
// allow-listed attribute allowed (e.g. custom_attributes["Tier"]) carried
// with the upstream's value wherever the event carries attributes.
// allowed maps an account key to its allow-listed attributes upstream.
func CheckMeaning(rows []Row, paired map[int]ledger.Event, allowed map[ledger.Key]map[string]string) []string {
	var problems []string
	for _, row := range rows {
		ev, ok := paired[row.Seq]
		if !ok || row.Expected == nil {
			continue
		}
		reached := row.Expected.Field + "=" + normEnum(row.Expected.To)
		switch {
		case recoveries[reached] && ev.Severity != "info":
			problems = append(problems, fmt.Sprintf("#%d %s: %s reached %q, a recovery by the document, but the event's severity is %q (want info)", row.Seq, row.Expected.Key, row.Expected.Field, row.Expected.To, ev.Severity))
		case holds[reached] && ev.Severity != "warning" && ev.Severity != "critical":
			problems = append(problems, fmt.Sprintf("#%d %s: %s reached %q, blocked by the document, but the event's severity is %q (want warning or critical)", row.Seq, row.Expected.Key, row.Expected.Field, row.Expected.To, ev.Severity))
		}
		if ev.Attrs == nil {
			continue
		}
		for name, want := range allowed[row.Expected.Key] {
			if got, ok := ev.Attrs[name]; !ok || got != want {
				problems = append(problems, fmt.Sprintf("#%d %s %s: allow-listed %s is %q, upstream %q", row.Seq, row.Expected.Key, row.Expected.Type, name, got, want))
			}
		}
	}
	return problems
}

func normEnum(s string) string {
	return strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(s)))
}

// Personal scans what the pipeline wrote (stream messages, sink deliveries,
// service logs) for the upstream's personal data: contact fields and the
// custom attributes that are not allow-listed. It is safe for concurrent
// use.
type Personal struct {
	mu      sync.Mutex
	needles map[string]string // value → where upstream it is (provider/account field)
	found   map[string]map[string]bool
}

// NewPersonal scans for needles (value → what it is).
func NewPersonal(needles map[string]string) *Personal {
	return &Personal{needles: needles, found: map[string]map[string]bool{}}
}

// Scan looks for every needle in b, written by where.
func (p *Personal) Scan(where string, b []byte) {
	for v, what := range p.needles {
		if bytes.Contains(b, []byte(v)) {
			p.mu.Lock()
			if p.found[what] == nil {
				p.found[what] = map[string]bool{}
			}
			p.found[what][where] = true
			p.mu.Unlock()
		}
	}
}

// Problems name each personal value found and where.
func (p *Personal) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for what, wheres := range p.found {
		list := make([]string, 0, len(wheres))
		for w := range wheres {
			list = append(list, w)
		}
		sort.Strings(list)
		out = append(out, fmt.Sprintf("personal data %s (not allow-listed) written to %s", what, strings.Join(list, ", ")))
	}
	sort.Strings(out)
	return out
}

// PersonalOf picks the personal values of the upstream's ActivePlatform
// accounts and BSS customers (GetAccountInfoByID's contact fields and its
// custom_attributes but allow; GetCustomerAccountInfo's LoginEmail), long
// enough not to match by chance. It also returns each account's values of
// the allow-listed attributes, under their allow-list name.
func PersonalOf(st *State, allow string, conns Conns) (map[string]string, map[ledger.Key]map[string]string) {
	needles := map[string]string{}
	allowed := map[ledger.Key]map[string]string{}
	add := func(v any, what string) {
		if s, ok := v.(string); ok && len(s) >= 6 {
			needles[s] = what
		}
	}
	for _, a := range st.ActivePlatform {
		id := fmt.Sprint(a["id"])
		for _, f := range []string{"email", "phone", "new_owner_email"} {
			add(a[f], fmt.Sprintf("activeplatform/%s %s", id, f))
		}
		attrs, _ := a["custom_attributes"].([]any)
		for _, x := range attrs {
			attr, _ := x.(map[string]any)
			name, _ := attr["name"].(string)
			if name == allow {
				k := ledger.Key{Provider: ProviderAP, Instance: conns.AP, Account: id}
				allowed[k] = map[string]string{fmt.Sprintf("custom_attributes[%q]", name): fmt.Sprint(attr["value"])}
				continue
			}
			add(attr["value"], fmt.Sprintf("activeplatform/%s custom_attributes[%q]", id, name))
		}
	}
	for _, c := range st.BSS {
		add(c["LoginEmail"], fmt.Sprintf("bss/%v LoginEmail", c["uid"]))
	}
	return needles, allowed
}
