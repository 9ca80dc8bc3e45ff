package web

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/accountwatch/accountwatch/pkg/audit"
	"github.com/accountwatch/accountwatch/pkg/describe"
	"github.com/accountwatch/accountwatch/pkg/event"
	"github.com/accountwatch/accountwatch/pkg/standing"
	"github.com/accountwatch/accountwatch/services/auditor/internal/deadman"
)

// The provider scope ("*") and the poller scope ("*poller") are not
// accounts: they are a connection as a whole, as the poller sees it (can the
// upstream be read?) and as the dead-man sees the poller (do its cycles
// run?). Their events (poll.degraded/recovered, poll.stalled/resumed) link
// to /accounts/…/* like any account's; this page says what they are.

// ScopePage is the data of a connection's page.
type ScopePage struct {
	Provider event.Provider
	Instance string
	Scope    standing.Scope
	// Poller is the dead-man's view (nil: the dead-man does not run or has
	// not seen the connection announced).
	Poller   *deadman.Status
	Timeline []TimelineRow
}

func (s *Server) scope(w http.ResponseWriter, r *http.Request) {
	p, inst := event.Provider(r.PathValue("provider")), r.PathValue("instance")
	if !p.Valid() || event.ValidateInstance(inst) != nil {
		s.fail(w, http.StatusNotFound, fmt.Errorf("no connection %.40q/%.40q", p, inst))
		return
	}
	data := ScopePage{Provider: p, Instance: inst, Scope: standing.Scope{Provider: p, Instance: inst}}
	for _, sc := range s.Index.Scopes() {
		if sc.Provider == p && sc.Instance == inst {
			data.Scope = sc
		}
	}
	if s.Pollers != nil {
		for _, st := range s.Pollers.Statuses() {
			if st.Connection.Provider == p && st.Connection.Name == inst {
				data.Poller = &st
			}
		}
	}
	for _, id := range []string{event.ProviderScope, event.PollerScope} {
		recs, err := audit.Timeline(r.Context(), s.JS, p, inst, id, 250)
		if err != nil {
			s.fail(w, http.StatusInternalServerError, err)
			return
		}
		for _, rec := range recs {
			ev, err := rec.Event()
			if err != nil {
				continue
			}
			data.Timeline = append(data.Timeline, TimelineRow{Seq: rec.Seq, Time: ev.Cloud.Time(), Headline: describe.Headline(ev), Change: describe.Change(ev),
				Severity: string(ev.Data.Severity), Evidence: strings.TrimSpace(ev.Data.Evidence.Endpoint + " " + ev.Data.Evidence.RequestID)})
		}
	}
	// Newest first, both scopes' events together.
	slices.SortFunc(data.Timeline, func(a, b TimelineRow) int { return cmp.Compare(b.Seq, a.Seq) })
	s.render(w, "scope", page{Title: inst + " (connection)", Nav: "overview", Data: data})
}

// scopeRedirect sends /accounts/{provider}/{instance}/* (and *poller), where
// every event's account link points, to the connection's page.
func (s *Server) scopeRedirect(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/connections/"+r.PathValue("provider")+"/"+r.PathValue("instance"), http.StatusSeeOther)
}

// connections are every connection the console knows of: those with a
// scope record, and those the pollers announced (the dead-man's), which
// have none while nothing ever went wrong.
func (s *Server) connections() []standing.Scope {
	out := s.Index.Scopes()
	if s.Pollers == nil {
		return out
	}
	for _, st := range s.Pollers.Statuses() {
		known := slices.ContainsFunc(out, func(sc standing.Scope) bool {
			return sc.Provider == st.Connection.Provider && sc.Instance == st.Connection.Name
		})
		if !known {
			out = append(out, standing.Scope{Provider: st.Connection.Provider, Instance: st.Connection.Name})
		}
	}
	slices.SortFunc(out, func(a, b standing.Scope) int { return cmp.Compare(a.Instance, b.Instance) })
	return out
}
