package sim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// appendAP appends an account as "Get Account Info by ID" answers it: every
// field of the response model, in the document's order, shaped as its
// example (balance a string, the other amounts numbers, nulls kept,
// custom_attributes an array of {name, value}, dates with milliseconds and an
// offset). It is written by hand: a 100,000-account listing renders every
// account, and encoding/json's reflection would make the simulator, not the
// client, the measure of a benchmark.
func appendAP(b []byte, a *APAccount) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, a.ID, 10)
	b = appendStr(append(b, `,"name":`...), a.Name)
	b = appendInt(append(b, `,"account_class_id":`...), a.AccountClassID)
	b = appendStr(append(b, `,"account_class":`...), a.AccountClass)
	b = appendStr(append(b, `,"primary_name":`...), a.PrimaryName)
	b = appendStr(append(b, `,"first_name":`...), a.FirstName)
	b = appendStr(append(b, `,"middle_name":`...), a.MiddleName)
	b = appendStr(append(b, `,"last_name":`...), a.LastName)
	b = appendStr(append(b, `,"country":`...), a.Country)
	b = appendStr(append(b, `,"region":`...), a.Region)
	b = appendStr(append(b, `,"city":`...), a.City)
	b = appendStr(append(b, `,"street":`...), a.Street)
	b = appendStr(append(b, `,"building":`...), a.Building)
	b = appendStr(append(b, `,"office":`...), a.Office)
	b = appendStr(append(b, `,"zip":`...), a.Zip)
	b = appendStr(append(b, `,"phone":`...), a.Phone)
	b = appendStr(append(b, `,"email":`...), a.Email)
	b = appendStr(append(b, `,"status":`...), a.Status)
	b = appendMoney(append(b, `,"balance":`...), a.Balance, a.BalanceAsNumber)
	b = appendInt(append(b, `,"account_type_id":`...), a.AccountTypeID)
	b = appendStr(append(b, `,"account_type":`...), a.AccountType)
	b = append(b, `,"default_payment_model":`...)
	if a.DefaultPaymentModel == "" {
		b = append(b, "null"...)
	} else {
		b = appendStr(b, a.DefaultPaymentModel)
	}
	b = appendMoney(append(b, `,"current_debt":`...), a.CurrentDebt, true)
	b = strconv.AppendBool(append(b, `,"financial_blocking_threshold_use_system":`...), a.FinancialBlockingThresholdUseSystem)
	b = appendMoney(append(b, `,"financial_blocking_threshold":`...), a.FinancialBlockingThreshold, true)
	b = strconv.AppendBool(append(b, `,"subscription_credit_limit_use_system":`...), a.SubscriptionCreditLimitUseSystem)
	b = appendMoney(append(b, `,"subscription_credit_limit":`...), a.SubscriptionCreditLimit, true)
	b = appendInt(append(b, `,"manager_id":`...), a.ManagerID)
	b = appendInt(append(b, `,"owner_id":`...), a.OwnerID)
	b = appendOpt(append(b, `,"new_owner_first_name":`...), a.NewOwnerFirstName)
	b = appendOpt(append(b, `,"new_owner_last_name":`...), a.NewOwnerLastName)
	b = appendOpt(append(b, `,"new_owner_middle_name":`...), a.NewOwnerMiddleName)
	b = appendOpt(append(b, `,"new_owner_email":`...), a.NewOwnerEmail)
	b = appendInt(append(b, `,"tech_user_id":`...), a.TechUserID)
	b = appendInt(append(b, `,"bill_user_id":`...), a.BillUserID)
	b = append(b, `,"custom_attributes":[`...)
	for i, at := range a.CustomAttributes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStr(append(b, `{"name":`...), at.Name)
		b = append(b, `,"value":`...)
		if s, ok := at.Value.(string); ok {
			b = appendStr(b, s)
		} else {
			b = append(b, raw(at.Value)...)
		}
		b = append(b, '}')
	}
	b = append(b, `],"created_at":"`...)
	b = a.CreatedAt.In(exampleZone).AppendFormat(b, exampleLayout)
	b = append(b, `","updated_at":"`...)
	b = a.UpdatedAt.In(exampleZone).AppendFormat(b, exampleLayout)
	return append(b, `"}`...)
}

// exampleLayout is the documented example's date-time:
// "2019-01-15T14:58:22.830+03:00".
const exampleLayout = "2006-01-02T15:04:05.000Z07:00"

func appendInt(b []byte, p *int64) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *p, 10)
}

func appendOpt(b []byte, p *string) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	return appendStr(b, *p)
}

// appendMoney writes decimal text as a JSON number, or a string of it.
func appendMoney(b []byte, text *string, asNumber bool) []byte {
	switch {
	case text == nil || *text == "":
		return append(b, "null"...)
	case asNumber:
		return append(b, *text...)
	}
	return append(append(append(b, '"'), *text...), '"')
}

// appendStr writes s as a JSON string: bytes as they are, but for the quote,
// the backslash and control characters.
func appendStr(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// apJSON renders one account: the documented shape, or (varied) any shape the
// document allows.
func (s *Server) apJSON(a APAccount) json.RawMessage {
	return s.appendAPJSON(nil, &a)
}

func (s *Server) appendAPJSON(dst []byte, a *APAccount) []byte {
	v := s.vary
	if v == nil {
		return appendAP(dst, a)
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
	return append(dst, v.object(kept)...)
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
	nl := ""
	if s.vary.coin(3) {
		nl = "\n"
	}
	buf := pageBufs.Get().(*[]byte)
	defer pageBufs.Put(buf)
	out := append((*buf)[:0], '[')
	n := 0
	total := s.State.eachAPPage(page, perPage, f, func(a *APAccount) {
		if n++; n > 1 {
			out = append(out, ',')
		}
		out = append(out, nl...)
		out = s.appendAPJSON(out, a)
	})
	out = append(out, nl+"]\n"...)
	*buf = out
	if !s.vary.coin(2) {
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	s.Faults.writeBody(ep, w, out)
}

// pageBufs are the listing's answers, reused: a million accounts listed are
// a gigabyte rendered, which would otherwise be garbage.
var pageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

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
