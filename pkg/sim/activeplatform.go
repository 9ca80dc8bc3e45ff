package sim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apWire is an account as the vendor API sends it: nulls kept, balance as a
// string or a number.
type apWire struct {
	ID                         int64             `json:"id"`
	Name                       string            `json:"name"`
	Status                     string            `json:"status"`
	Balance                    json.RawMessage   `json:"balance"`
	CurrentDebt                *string           `json:"current_debt"`
	FinancialBlockingThreshold *string           `json:"financial_blocking_threshold"`
	SubscriptionCreditLimit    *string           `json:"subscription_credit_limit"`
	Currency                   string            `json:"currency"`
	OwnerID                    *int64            `json:"owner_id"`
	ManagerID                  *int64            `json:"manager_id"`
	FirstName                  string            `json:"first_name"`
	LastName                   string            `json:"last_name"`
	Email                      string            `json:"email"`
	Phone                      string            `json:"phone"`
	CustomAttributes           map[string]string `json:"custom_attributes"`
	CreatedAt                  string            `json:"created_at"`
	UpdatedAt                  string            `json:"updated_at"`
}

func toWire(a APAccount) apWire {
	bal := json.RawMessage("null")
	if a.Balance != "" {
		if a.BalanceAsNumber {
			bal = json.RawMessage(a.Balance)
		} else {
			bal, _ = json.Marshal(a.Balance)
		}
	}
	return apWire{
		ID: a.ID, Name: a.Name, Status: a.Status, Balance: bal, CurrentDebt: a.CurrentDebt,
		FinancialBlockingThreshold: a.FinancialBlockingThreshold, SubscriptionCreditLimit: a.SubscriptionCreditLimit,
		Currency: a.Currency, OwnerID: a.OwnerID, ManagerID: a.ManagerID, FirstName: a.FirstName, LastName: a.LastName,
		Email: a.Email, Phone: a.Phone, CustomAttributes: a.CustomAttributes,
		CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: a.UpdatedAt.UTC().Format(time.RFC3339),
	}
}

func (s *Server) apAuth(w http.ResponseWriter, r *http.Request) bool {
	tok := r.URL.Query().Get("api_token")
	for _, t := range s.State.seed.ActivePlatform.Tokens {
		if tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
			return true
		}
	}
	apError(w, http.StatusUnauthorized, "Unauthorized: invalid or missing api_token")
	return false
}

func apError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": msg, "status": status})
}

// apBegin counts a request, stamps its id, and answers it when a fault or a bad
// token says so; it reports whether the handler goes on.
func (s *Server) apBegin(ep string, w http.ResponseWriter, r *http.Request) bool {
	s.count(ep)
	w.Header().Set("X-Request-Id", requestID())
	return !s.Faults.apply(ep, w, r) && s.apAuth(w, r)
}

func (s *Server) apGet(w http.ResponseWriter, r *http.Request) {
	const ep = "ap.get"
	if !s.apBegin(ep, w, r) {
		return
	}
	idText, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil {
		apError(w, http.StatusNotFound, "Not found")
		return
	}
	s.logPoll("ap/" + idText)
	a, found := s.State.APAccount(id)
	if !found {
		apError(w, http.StatusNotFound, "Account not found")
		return
	}
	s.writeJSON(w, ep, toWire(a))
}

func (s *Server) apList(w http.ResponseWriter, r *http.Request) {
	const ep = "ap.list"
	if !s.apBegin(ep, w, r) {
		return
	}
	q := r.URL.Query()
	maxPer := s.State.seed.ActivePlatform.MaxPerPage
	if maxPer <= 0 {
		maxPer = 1000
	}
	page, ok := positiveInt(w, q.Get("page"), "page", 1)
	if !ok {
		return
	}
	perPage, ok := positiveInt(w, q.Get("per_page"), "per_page", 50)
	if !ok {
		return
	}
	perPage = min(perPage, maxPer)
	var f APFilter
	if v := q.Get("filters[updated_at]"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			if t, err = time.Parse("2006-01-02", v); err != nil {
				apError(w, http.StatusUnprocessableEntity, "filters[updated_at] must be RFC 3339 or YYYY-MM-DD")
				return
			}
		}
		f.UpdatedSince = t
	}
	f.Status = q.Get("filters[status]")
	accounts, total := s.State.APPage(page, perPage, f)
	out := make([]apWire, len(accounts))
	for i, a := range accounts {
		out[i] = toWire(a)
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	s.writeJSON(w, ep, out)
}

// writeJSON answers 200 with v, through the endpoint's body faults if any.
func (s *Server) writeJSON(w http.ResponseWriter, ep string, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.Faults.writeBody(ep, w, buf.Bytes())
}

// positiveInt parses a paging parameter, answering 422 when it is not one.
func positiveInt(w http.ResponseWriter, v, name string, def int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		apError(w, http.StatusUnprocessableEntity, name+" must be a positive integer")
		return 0, false
	}
	return n, true
}
