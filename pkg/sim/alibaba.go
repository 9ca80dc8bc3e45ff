package sim

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// API versions of the simulated products.
const (
	BSSVersion  = "2017-12-14"
	CAMSVersion = "2020-06-06"
)

var actions = map[string]string{
	"GetCustomerAccountInfo":    "bss",
	"GetCustomerList":           "bss",
	"CreateAgAccount":           "bss",
	"QueryPhoneBusinessProfile": "cams",
	"QueryChatappPhoneNumbers":  "cams",
}

// aliError writes the documented error body: RequestId, HostId, Code, Message,
// Recommend. A throttled answer also carries x-ratelimit-user-api with TimeLeft
// in milliseconds, which darabonba reads as the retry-after.
func aliError(w http.ResponseWriter, r *http.Request, status int, code, msg string, retryAfter time.Duration) {
	id := requestID()
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	if retryAfter > 0 {
		// Rounded up: a wait under a millisecond is still a wait, and
		// TimeLeft:0 would tell the client to come back at once.
		ms := (retryAfter + time.Millisecond - 1).Milliseconds()
		w.Header().Set("x-ratelimit-user-api", fmt.Sprintf("Limit:10,Remain:0,TimeLeft:%d,Reset:%d", ms, time.Now().Add(retryAfter).Unix()))
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"RequestId": id, "HostId": r.Host, "Code": code, "Message": msg,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(code) + "&product=BssOpenApi&requestId=" + id,
	})
}

// throttled answers as the products' rate limiters do: BSS with HTTP 400
// Throttling.User; CAMS with System.LimitControl, HTTP 400 as its document's
// error table says (varied: in a 200 body, where some gateways put it); both
// with the TimeLeft header.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, product string, wait time.Duration) {
	throttledAnswer(w, r, product, wait, s.vary.coin(2))
}

func throttledAnswer(w http.ResponseWriter, r *http.Request, product string, wait time.Duration, in200 bool) {
	if product == "cams" {
		status := http.StatusBadRequest
		if in200 {
			status = http.StatusOK
		}
		aliError(w, r, status, "System.LimitControl", "The system is under flow control.", wait)
		return
	}
	aliError(w, r, http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control.", wait)
}

// rpcParams merges query and form parameters (RPC style accepts both).
func rpcParams(r *http.Request) (url.Values, []byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	params := url.Values{}
	for k, v := range r.URL.Query() {
		params[k] = v
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, nil, err
		}
		for k, v := range form {
			params[k] = v
		}
	}
	return params, body, nil
}

func (s *Server) alibaba(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		aliError(w, r, http.StatusMethodNotAllowed, "UnsupportedHTTPMethod", "RPC APIs accept GET or POST", 0)
		return
	}
	params, body, err := rpcParams(r)
	if err != nil {
		aliError(w, r, http.StatusBadRequest, "InvalidParameter", "unreadable parameters", 0)
		return
	}
	action := firstOf(r.Header.Get("x-acs-action"), params.Get("Action"))
	version := firstOf(r.Header.Get("x-acs-version"), params.Get("Version"))
	product, ok := actions[action]
	if !ok {
		aliError(w, r, http.StatusNotFound, "InvalidAction.NotFound", fmt.Sprintf("Specified api %q is not found, please check your url and method.", action), 0)
		return
	}
	want := BSSVersion
	if product == "cams" {
		want = CAMSVersion
	}
	if version != want {
		aliError(w, r, http.StatusBadRequest, "InvalidVersion", fmt.Sprintf("Specified parameter Version %q is not valid (want %s).", version, want), 0)
		return
	}
	ep := product + "." + action
	s.count(ep)
	if s.Faults.apply(ep, w, r) {
		return
	}
	cred, status, code, msg := s.authenticate(r, params, body)
	if code == "" {
		status, code, msg = permitted(cred, product, action)
	}
	if code != "" {
		s.log.Info("rejected request", "endpoint", ep, "code", code)
		aliError(w, r, status, code, msg, 0)
		return
	}
	if wait := s.limiter.wait(cred.AccessKeyID, action); wait > 0 {
		s.throttled(w, r, product, wait)
		return
	}
	switch action {
	case "GetCustomerAccountInfo":
		s.getCustomerAccountInfo(w, r, ep, params)
	case "GetCustomerList":
		s.getCustomerList(w, r, ep)
	case "CreateAgAccount":
		s.createAgAccount(w, r, ep, params)
	case "QueryPhoneBusinessProfile":
		s.queryPhoneBusinessProfile(w, r, ep, params)
	case "QueryChatappPhoneNumbers":
		s.queryChatappPhoneNumbers(w, r, ep, params)
	}
}

// permitted answers what the documents' error tables say for a key that may
// not call an action: BSS NotAuthorized (400), CAMS Ram.PermissionDeny (400),
// or Product.Unsubscript (400) for a product the account has not subscribed to.
func permitted(c Credential, product, action string) (int, string, string) {
	switch {
	case slices.Contains(c.Unsubscribed, product):
		return http.StatusBadRequest, "Product.Unsubscript", "You have not subscribed to the specified product."
	case !slices.Contains(c.Deny, action):
		return 0, "", ""
	case product == "cams":
		return http.StatusBadRequest, "Ram.PermissionDeny", "You are not authorized to perform the operation."
	}
	return http.StatusBadRequest, "NotAuthorized", "This API is not authorized for caller."
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// answer is a success body: the members in the document's order (varied:
// any order, extra members, any whitespace).
func (s *Server) answer(w http.ResponseWriter, ep string, ms ...member) {
	s.writeJSON(w, ep, s.vary.object(ms))
}

// bssEnvelope is BSS's documented success envelope around data members.
func (s *Server) bssEnvelope(code json.RawMessage, data ...member) []member {
	return append([]member{{"Code", code}, {"Message", raw("Successful!")}, {"RequestId", raw(requestID())}, {"Success", raw(true)}}, data...)
}

// missing answers a required parameter that is absent, as Alibaba's gateways
// do (Missing<Parameter>, HTTP 400).
func missing(w http.ResponseWriter, r *http.Request, name string) {
	aliError(w, r, http.StatusBadRequest, "Missing"+name, name+" is mandatory for this action.", 0)
}

// getCustomerAccountInfo answers from the customer named by OwnerId (the
// parameter of the action's earlier published version, which the current
// document no longer lists): without one, or for a customer the reseller
// does not have, the document's VnoNoDataError (HTTP 401).
func (s *Server) getCustomerAccountInfo(w http.ResponseWriter, r *http.Request, ep string, p url.Values) {
	owner := p.Get("OwnerId")
	s.logPoll("bss/" + owner)
	c, ok := s.State.Customer(owner)
	if owner == "" || !ok {
		aliError(w, r, http.StatusUnauthorized, "VnoNoDataError", "There is no data by this request.", 0)
		return
	}
	mpk := s.State.seed.Alibaba.Mpk
	if mpk == "" {
		mpk = "0"
	}
	mpkJSON := s.vary.number(mpk, !c.MpkAsString)
	if s.vary == nil && c.MpkAsString {
		mpkJSON = raw(mpk)
	}
	data := s.vary.object([]member{
		{"Mpk", mpkJSON}, {"LoginEmail", raw(c.LoginEmail)}, {"HostingStatus", raw(s.vary.hosting(c.HostingStatus))},
		{"AccountType", raw(c.AccountType)}, {"CreditLimitStatus", raw(c.CreditLimitStatus)}, {"IsCertified", raw(c.IsCertified)},
	})
	s.answer(w, ep, s.bssEnvelope(raw("Success"), member{"Data", data})...)
}

// hosting spells HostingStatus as the current document (FREEZE, TRUSTEESHIP)
// or, varied, as its earlier version did (Trusteeship).
func (v *variation) hosting(h string) string {
	if h == "TRUSTEESHIP" && v.coin(2) {
		return "Trusteeship"
	}
	return h
}

// getCustomerList answers GetCustomerList's published document: Code "200",
// the uids as strings (varied: the number 200 and numbers, as one published
// version shows); a reseller without customers is its VnoNoDataError (401).
func (s *Server) getCustomerList(w http.ResponseWriter, r *http.Request, ep string) {
	uids := s.State.UIDs()
	if len(uids) == 0 {
		aliError(w, r, http.StatusUnauthorized, "VnoNoDataError", "There is no data by this request.", 0)
		return
	}
	list := make([]json.RawMessage, len(uids))
	asNumbers := s.vary.coin(2)
	for i, u := range uids {
		list[i] = raw(u)
		if asNumbers && isDigits(u) {
			list[i] = json.RawMessage(u)
		}
	}
	code := raw("200")
	if asNumbers {
		code = json.RawMessage("200")
	}
	s.answer(w, ep, s.bssEnvelope(code, member{"Data", s.vary.object([]member{{"UidList", raw(list)}})})...)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

var agMu sync.Mutex

// createAgAccount answers CreateAgAccount: LoginEmail and AccountAttr are
// required; a used login email is the documented sample answer (Success
// true, Code LOGIN_EMAIL_HAS_BEEN_USED, the existing relation); an email of
// a domain the reseller may not use is EMAIL_DOMAIN_NOT_AUTHORIZED in a 200
// body (the earlier published version's error table). A created account is
// Code "Success" with its AgRelationDto (varied: "SUCCESS" or "200", and the
// earlier version's {"code", "data": {"AgRelationDto"}} shape).
func (s *Server) createAgAccount(w http.ResponseWriter, r *http.Request, ep string, p url.Values) {
	email := strings.TrimSpace(p.Get("LoginEmail"))
	switch {
	case email == "":
		missing(w, r, "LoginEmail")
		return
	case strings.TrimSpace(p.Get("AccountAttr")) == "":
		missing(w, r, "AccountAttr")
		return
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email {
		aliError(w, r, http.StatusBadRequest, "InvalidParameter.LoginEmail", "LoginEmail is not a valid email address.", 0)
		return
	}
	if domains := s.State.seed.Alibaba.AgEmailDomains; len(domains) > 0 {
		domain := email[strings.LastIndexByte(email, '@')+1:]
		if !slices.ContainsFunc(domains, func(d string) bool { return strings.EqualFold(d, domain) }) {
			s.answer(w, ep, member{"Code", raw("EMAIL_DOMAIN_NOT_AUTHORIZED")},
				member{"Message", raw("The domain of LoginEmail must be one of: " + strings.Join(domains, ", ") + ".")},
				member{"RequestId", raw(requestID())}, member{"Success", raw(false)})
			return
		}
	}
	agMu.Lock()
	defer agMu.Unlock()
	mpk := s.State.seed.Alibaba.Mpk
	s.State.mu.RLock()
	uid, used := s.State.customerByEmail(email)
	s.State.mu.RUnlock()
	rel := func(uid string) json.RawMessage {
		return s.vary.object([]member{{"Type", raw("FINACE_CLOUD")}, {"Pk", raw(uid)}, {"RamAdminRoleName", raw("admin-role")}, {"Mpk", raw(mpk)}})
	}
	if used {
		s.answer(w, ep, member{"Code", raw("LOGIN_EMAIL_HAS_BEEN_USED")}, member{"Message", raw("loginEmail=" + email + ",has used")},
			member{"RequestId", raw(requestID())}, member{"Success", raw(true)}, member{"AgRelationDto", rel(uid)})
		return
	}
	uid = strconv.FormatInt(1_800_000_000_000_000+int64(len(s.State.UIDs()))+1, 10)
	s.State.AddCustomer(BSSCustomer{UID: uid, LoginEmail: email, HostingStatus: "TRUSTEESHIP", CreditLimitStatus: "Thaw", AccountType: p.Get("AccountAttr"), IsCertified: false})
	if s.vary.coin(3) {
		s.answer(w, ep, member{"code", raw("SUCCESS")}, member{"data", s.vary.object([]member{{"AgRelationDto", rel(uid)}})})
		return
	}
	code := "Success"
	if s.vary != nil {
		code = []string{"Success", "SUCCESS", "200"}[s.vary.intn(3)]
	}
	s.answer(w, ep, s.bssEnvelope(raw(code), member{"AgRelationDto", rel(uid)})...)
}

// queryPhoneBusinessProfile answers as its document: CustSpaceId and
// PhoneNumber required; a space or number that is not the caller's is
// Unknown.ResourceOwnerId (HTTP 400).
func (s *Server) queryPhoneBusinessProfile(w http.ResponseWriter, r *http.Request, ep string, p url.Values) {
	space, number := p.Get("CustSpaceId"), p.Get("PhoneNumber")
	switch {
	case space == "":
		missing(w, r, "CustSpaceId")
		return
	case number == "":
		missing(w, r, "PhoneNumber")
		return
	}
	s.logPoll("cams/" + number)
	ph, ok := s.State.Phone(space, number)
	if !ok {
		aliError(w, r, http.StatusBadRequest, "Unknown.ResourceOwnerId", "The resource does not belong to the current user.", 0)
		return
	}
	pr := ph.Profile
	sites := pr.Websites
	if sites == nil {
		sites = []string{}
	}
	data := s.vary.object([]member{{"Vertical", raw(pr.Vertical)}, {"Description", raw(pr.Description)}, {"Email", raw(pr.Email)},
		{"Address", raw(pr.Address)}, {"ProfilePictureUrl", raw(pr.ProfilePictureURL)}, {"Websites", raw(sites)}, {"About", raw(pr.About)}})
	ms := []member{{"AccessDeniedDetail", raw("None")}, {"Message", raw("None")}, {"RequestId", raw(requestID())}, {"Data", data},
		{"Code", raw("OK")}, {"Success", raw(true)}}
	if s.vary.coin(3) {
		ms = ms[1:] // AccessDeniedDetail is only ever "None" here
	}
	s.answer(w, ep, ms...)
}

// queryChatappPhoneNumbers answers as its document: CustSpaceId is optional
// (without it, the caller's own numbers: none here); a space that is not the
// caller's is Unknown.ResourceOwnerId (HTTP 400).
func (s *Server) queryChatappPhoneNumbers(w http.ResponseWriter, r *http.Request, ep string, p url.Values) {
	space := p.Get("CustSpaceId")
	phones, ok := s.State.Phones(space)
	if space != "" && !ok {
		aliError(w, r, http.StatusBadRequest, "Unknown.ResourceOwnerId", "The resource does not belong to the current user.", 0)
		return
	}
	list := make([]json.RawMessage, len(phones))
	for i, ph := range phones {
		list[i] = s.vary.object([]member{{"UpQueue", raw("Alicom-Queue-sim-ChatAppInbound")}, {"PhoneNumber", raw(ph.Number)},
			{"StatusQueue", raw("Alicom-Queue-sim-ChatAppStatus")}, {"VerifiedName", raw(ph.VerifiedName)},
			{"StatusCallbackUrl", raw("")}, {"UpCallbackUrl", raw("")}, {"QualityRating", raw("GREEN")}, {"Status", raw(ph.Status)},
			{"CodeVerificationStatus", raw("VERIFIED")}, {"NameStatus", raw("Approval")}, {"MessagingLimitTier", raw("TIER_10")},
			{"NewNameStatus", raw("Approval")}})
	}
	s.answer(w, ep, member{"RequestId", raw(requestID())}, member{"Code", raw("OK")}, member{"Message", raw("SUCCESS")}, member{"PhoneNumbers", raw(list)})
}

// authenticate checks an ACS3-HMAC-SHA256 (V3) or an HMAC-SHA1 (RPC v1)
// signature, the request time and the nonce. It returns the caller's credential
// or the documented error.
func (s *Server) authenticate(r *http.Request, p url.Values, body []byte) (Credential, int, string, string) {
	auth := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(auth, "ACS3-HMAC-SHA256 "):
		return s.verifyV3(r, p, body, auth)
	case p.Get("Signature") != "":
		return s.verifyRPC(r, p)
	}
	return Credential{}, http.StatusBadRequest, "MissingSignature", "The request is not signed (ACS3-HMAC-SHA256 or HMAC-SHA1 expected)."
}

func (s *Server) credential(id string) (Credential, bool) {
	for _, c := range s.State.seed.Alibaba.Credentials {
		if c.AccessKeyID == id {
			return c, true
		}
	}
	return Credential{}, false
}

var v3AuthRE = regexp.MustCompile(`^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})$`)

func (s *Server) verifyV3(r *http.Request, p url.Values, body []byte, auth string) (Credential, int, string, string) {
	m := v3AuthRE.FindStringSubmatch(auth)
	if m == nil {
		return Credential{}, http.StatusBadRequest, "IncompleteSignature", "The Authorization header is malformed."
	}
	cred, ok := s.credential(m[1])
	if !ok {
		return Credential{}, http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
	}
	if c, st, code, msg := s.checkTimeAndNonce(r.Header.Get("x-acs-date"), r.Header.Get("x-acs-signature-nonce")); code != "" {
		return c, st, code, msg
	}
	sum := sha256.Sum256(body)
	if payload := r.Header.Get("x-acs-content-sha256"); payload != hex.EncodeToString(sum[:]) {
		return Credential{}, http.StatusBadRequest, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body."
	}
	signed := strings.Split(m[2], ";")
	var ch strings.Builder
	for _, h := range signed {
		if h != strings.ToLower(h) || !(strings.HasPrefix(h, "x-acs-") || h == "host" || h == "content-type") {
			return Credential{}, http.StatusBadRequest, "IncompleteSignature", "SignedHeaders lists an unsignable header."
		}
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		ch.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	for _, must := range []string{"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"} {
		if !contains(signed, must) {
			return Credential{}, http.StatusBadRequest, "IncompleteSignature", "SignedHeaders must include " + must + "."
		}
	}
	canonical := r.Method + "\n" + canonicalURI(r.URL.EscapedPath()) + "\n" + canonicalQuery(r.URL.Query()) + "\n" + ch.String() + "\n" +
		m[2] + "\n" + r.Header.Get("x-acs-content-sha256")
	h := sha256.Sum256([]byte(canonical))
	mac := hmac.New(sha256.New, []byte(cred.AccessKeySecret))
	mac.Write([]byte("ACS3-HMAC-SHA256\n" + hex.EncodeToString(h[:])))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(m[3])) != 1 {
		return Credential{}, http.StatusBadRequest, "SignatureDoesNotMatch", "The request signature does not conform to Aliyun standards."
	}
	return cred, 0, "", ""
}

func (s *Server) verifyRPC(r *http.Request, p url.Values) (Credential, int, string, string) {
	cred, ok := s.credential(p.Get("AccessKeyId"))
	if !ok {
		return Credential{}, http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
	}
	if p.Get("SignatureMethod") != "HMAC-SHA1" {
		return Credential{}, http.StatusBadRequest, "InvalidSignatureMethod", "SignatureMethod must be HMAC-SHA1."
	}
	if c, st, code, msg := s.checkTimeAndNonce(p.Get("Timestamp"), p.Get("SignatureNonce")); code != "" {
		return c, st, code, msg
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = percentEncode(k) + "=" + percentEncode(p.Get(k))
	}
	toSign := r.Method + "&%2F&" + percentEncode(strings.Join(parts, "&"))
	mac := hmac.New(sha1.New, []byte(cred.AccessKeySecret+"&"))
	mac.Write([]byte(toSign))
	if subtle.ConstantTimeCompare([]byte(base64.StdEncoding.EncodeToString(mac.Sum(nil))), []byte(p.Get("Signature"))) != 1 {
		return Credential{}, http.StatusBadRequest, "SignatureDoesNotMatch", "The request signature does not conform to Aliyun standards."
	}
	return cred, 0, "", ""
}

func (s *Server) checkTimeAndNonce(stamp, nonce string) (Credential, int, string, string) {
	t, err := time.Parse("2006-01-02T15:04:05Z", stamp)
	if err != nil {
		return Credential{}, http.StatusBadRequest, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
	}
	if d := s.State.now().Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return Credential{}, http.StatusBadRequest, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
	}
	if nonce == "" {
		return Credential{}, http.StatusBadRequest, "MissingSignatureNonce", "SignatureNonce is mandatory."
	}
	if _, dup := s.nonces.LoadOrStore(nonce, t); dup {
		return Credential{}, http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already."
	}
	return Credential{}, 0, "", ""
}

// percentEncode is RFC 3986 encoding as Alibaba's signatures use it.
func percentEncode(s string) string {
	e := url.QueryEscape(s)
	return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(e)
}

func canonicalURI(p string) string {
	if p == "" {
		return "/"
	}
	return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(p)
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + percentEncode(q.Get(k))
	}
	return strings.Join(parts, "&")
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// limiters are per access key and action token buckets.
type limiters struct {
	mu     sync.Mutex
	limits map[string]float64
	m      map[string]*rate.Limiter
}

func newLimiters(limits map[string]float64) *limiters {
	l := &limiters{limits: map[string]float64{"QueryPhoneBusinessProfile": 10, "QueryChatappPhoneNumbers": 10}, m: map[string]*rate.Limiter{}}
	for k, v := range limits {
		l.limits[k] = v
	}
	return l
}

// wait is 0 when the call may proceed, else how long until it would.
func (l *limiters) wait(key, action string) time.Duration {
	qps, ok := l.limits[action]
	if !ok || qps <= 0 {
		return 0
	}
	l.mu.Lock()
	lim, ok := l.m[key+"/"+action]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(qps), max(1, int(qps)))
		l.m[key+"/"+action] = lim
	}
	l.mu.Unlock()
	res := lim.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d
	}
	return 0
}
