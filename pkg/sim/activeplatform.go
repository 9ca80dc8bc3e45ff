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

// apWire is an account as "Get Account Info by ID" answers it: every field
// of the response model, in the document's order, shaped as its example
// (balance a string, the other amounts numbers, nulls kept, custom_attributes
// an array of {name, value}, dates with milliseconds and an offset).
type apWire struct {
	ID                                  int64           `json:"id"`
	Name                                string          `json:"name"`
	AccountClassID                      *int64          `json:"account_class_id"`
	AccountClass                        string          `json:"account_class"`
	PrimaryName                         string          `json:"primary_name"`
	FirstName                           string          `json:"first_name"`
	MiddleName                          string          `json:"middle_name"`
	LastName                            string          `json:"last_name"`
	Country                             string          `json:"country"`
	Region                              string          `json:"region"`
	City                                string          `json:"city"`
	Street                              string          `json:"street"`
	Building                            string          `json:"building"`
	Office                              string          `json:"office"`
	Zip                                 string          `json:"zip"`
	Phone                               string          `json:"phone"`
	Email                               string          `json:"email"`
	Status                              string          `json:"status"`
	Balance                             json.RawMessage `json:"balance"`
	AccountTypeID                       *int64          `json:"account_type_id"`
	AccountType                         string          `json:"account_type"`
	DefaultPaymentModel                 *string         `json:"default_payment_model"` // prepay, postpay; null when unset
	CurrentDebt                         json.RawMessage `json:"current_debt"`
	FinancialBlockingThresholdUseSystem bool            `json:"financial_blocking_threshold_use_system"`
	FinancialBlockingThreshold          json.RawMessage `json:"financial_blocking_threshold"`
	SubscriptionCreditLimitUseSystem    bool            `json:"subscription_credit_limit_use_system"`
	SubscriptionCreditLimit             json.RawMessage `json:"subscription_credit_limit"`
	ManagerID                           *int64          `json:"manager_id"`
	OwnerID                             *int64          `json:"owner_id"`
	NewOwnerFirstName                   *string         `json:"new_owner_first_name"`
	NewOwnerLastName                    *string         `json:"new_owner_last_name"`
	NewOwnerMiddleName                  *string         `json:"new_owner_middle_name"`
	NewOwnerEmail                       *string         `json:"new_owner_email"`
	TechUserID                          *int64          `json:"tech_user_id"`
	BillUserID                          *int64          `json:"bill_user_id"`
	CustomAttributes                    []Attribute     `json:"custom_attributes"`
	CreatedAt                           json.RawMessage `json:"created_at"`
	UpdatedAt                           json.RawMessage `json:"updated_at"`
}

// apJSON renders one account: the documented shape, or (varied) any shape the
// document allows.
func (s *Server) apJSON(a APAccount) json.RawMessage {
	v := s.vary
	if v == nil {
		attrs := a.CustomAttributes
		if attrs == nil {
			attrs = []Attribute{}
		}
		b, err := json.Marshal(apWire{
			ID: a.ID, Name: a.Name, AccountClassID: a.AccountClassID, AccountClass: a.AccountClass, PrimaryName: a.PrimaryName,
			FirstName: a.FirstName, MiddleName: a.MiddleName, LastName: a.LastName, Country: a.Country, Region: a.Region, City: a.City,
			Street: a.Street, Building: a.Building, Office: a.Office, Zip: a.Zip, Phone: a.Phone, Email: a.Email, Status: a.Status,
			Balance: v.money(a.Balance, a.BalanceAsNumber), AccountTypeID: a.AccountTypeID, AccountType: a.AccountType,
			DefaultPaymentModel: nullIfEmpty(a.DefaultPaymentModel), CurrentDebt: v.money(a.CurrentDebt, true),
			FinancialBlockingThresholdUseSystem: a.FinancialBlockingThresholdUseSystem, FinancialBlockingThreshold: v.money(a.FinancialBlockingThreshold, true),
			SubscriptionCreditLimitUseSystem: a.SubscriptionCreditLimitUseSystem, SubscriptionCreditLimit: v.money(a.SubscriptionCreditLimit, true),
			ManagerID: a.ManagerID, OwnerID: a.OwnerID, NewOwnerFirstName: a.NewOwnerFirstName, NewOwnerLastName: a.NewOwnerLastName,
			NewOwnerMiddleName: a.NewOwnerMiddleName, NewOwnerEmail: a.NewOwnerEmail, TechUserID: a.TechUserID, BillUserID: a.BillUserID,
			CustomAttributes: attrs, CreatedAt: v.time(a.CreatedAt), UpdatedAt: v.time(a.UpdatedAt),
		})
		if err != nil {
			return json.RawMessage(`null`)
		}
		return b
	}
	id := func(p *int64) json.RawMessage {
		if p == nil {
			return json.RawMessage(`null`)
		}
		return raw(*p)
	}
	opt := func(p *string) json.RawMessage {
		if p == nil {
			return json.RawMessage(`null`)
		}
		return raw(*p)
	}
	ms := []member{
		{"id", raw(a.ID)}, {"name", raw(a.Name)}, {"account_class_id", id(a.AccountClassID)}, {"account_class", v.text(a.AccountClass)},
		{"primary_name", v.text(a.PrimaryName)}, {"first_name", v.text(a.FirstName)}, {"middle_name", v.text(a.MiddleName)},
		{"last_name", v.text(a.LastName)}, {"country", v.text(a.Country)}, {"region", v.text(a.Region)}, {"city", v.text(a.City)},
		{"street", v.text(a.Street)}, {"building", v.text(a.Building)}, {"office", v.text(a.Office)}, {"zip", v.text(a.Zip)},
		{"phone", v.text(a.Phone)}, {"email", v.text(a.Email)}, {"status", raw(v.status(a.Status))},
		{"balance", v.money(a.Balance, a.BalanceAsNumber)}, {"account_type_id", id(a.AccountTypeID)}, {"account_type", v.text(a.AccountType)},
		{"default_payment_model", raw(nullIfEmpty(a.DefaultPaymentModel))}, {"current_debt", v.money(a.CurrentDebt, true)},
		{"financial_blocking_threshold_use_system", raw(a.FinancialBlockingThresholdUseSystem)},
		{"financial_blocking_threshold", v.money(a.FinancialBlockingThreshold, true)},
		{"subscription_credit_limit_use_system", raw(a.SubscriptionCreditLimitUseSystem)},
		{"subscription_credit_limit", v.money(a.SubscriptionCreditLimit, true)},
		{"manager_id", id(a.ManagerID)}, {"owner_id", id(a.OwnerID)},
		{"new_owner_first_name", opt(a.NewOwnerFirstName)}, {"new_owner_last_name", opt(a.NewOwnerLastName)},
		{"new_owner_middle_name", opt(a.NewOwnerMiddleName)}, {"new_owner_email", opt(a.NewOwnerEmail)},
		{"tech_user_id", id(a.TechUserID)}, {"bill_user_id", id(a.BillUserID)},
		{"custom_attributes", v.attributes(a.CustomAttributes)},
		{"created_at", v.time(a.CreatedAt)}, {"updated_at", v.time(a.UpdatedAt)},
	}
	// A member whose value is missing may be left out altogether.
	kept := ms[:0]
	for _, m := range ms {
		if string(m.val) == "null" && v.coin(3) {
			continue
		}
		kept = append(kept, m)
	}
	return v.object(kept)
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// attributes writes custom_attributes, varied with more attributes whose
// values are of every JSON type (their names are no operator's allow-list).
func (v *variation) attributes(attrs []Attribute) json.RawMessage {
	items := make([]json.RawMessage, 0, len(attrs)+2)
	for _, at := range attrs {
		items = append(items, v.object([]member{{"name", raw(at.Name)}, {"value", raw(at.Value)}}))
	}
	for n := v.intn(3); n > 0; n-- {
		items = append(items, v.object([]member{{"name", raw("Sim attribute " + strconv.Itoa(v.intn(50)))}, {"value", v.anyValue()}}))
	}
	return raw(items)
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
	s.writeJSON(w, ep, s.apJSON(a))
}

// apList answers "Get a List of Accounts": page, per_page,
// sorting[field], sorting[reversed] (the document marks it required),
// filters[created_at], filters[updated_at] (at or after), filters[status],
// filters[email]; the answer is a JSON array of accounts of the response
// model. X-Total-Count is not documented: it is sent unless varied away.
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
	switch q.Get("sorting[reversed]") {
	case "true":
		f.Reversed = true
	case "false":
	case "":
		apError(w, http.StatusUnprocessableEntity, "sorting[reversed] is required (true or false)")
		return
	default:
		apError(w, http.StatusUnprocessableEntity, "sorting[reversed] must be true or false")
		return
	}
	f.SortField = q.Get("sorting[field]")
	if !sortable[f.SortField] {
		apError(w, http.StatusUnprocessableEntity, "sorting[field] "+strconv.Quote(f.SortField)+" is not a field of the account")
		return
	}
	for _, d := range []struct {
		name string
		dst  *time.Time
	}{{"filters[updated_at]", &f.UpdatedSince}, {"filters[created_at]", &f.CreatedSince}} {
		if v := q.Get(d.name); v != "" {
			t, ok := parseFilterTime(v)
			if !ok {
				apError(w, http.StatusUnprocessableEntity, d.name+" must be a date (YYYY-MM-DD) or an RFC 3339 date-time")
				return
			}
			*d.dst = t
		}
	}
	f.Status, f.Email = q.Get("filters[status]"), q.Get("filters[email]")
	accounts, total := s.State.APPage(page, perPage, f)
	var b bytes.Buffer
	nl := ""
	if s.vary.coin(3) {
		nl = "\n"
	}
	b.WriteByte('[')
	for i, a := range accounts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(nl)
		b.Write(s.apJSON(a))
	}
	b.WriteString(nl + "]\n")
	if !s.vary.coin(2) {
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	s.Faults.writeBody(ep, w, b.Bytes())
}

// sortable are the fields a listing sorts by ("": the default, by id).
var sortable = map[string]bool{"": true, "id": true, "name": true, "status": true, "created_at": true, "updated_at": true}

func parseFilterTime(v string) (time.Time, bool) {
	for _, l := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(l, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// writeJSON answers 200 with v (a json.RawMessage as it is), through the
// endpoint's body faults if any.
func (s *Server) writeJSON(w http.ResponseWriter, ep string, v any) {
	if r, ok := v.(json.RawMessage); ok {
		s.Faults.writeBody(ep, w, append(r, '\n'))
		return
	}
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
