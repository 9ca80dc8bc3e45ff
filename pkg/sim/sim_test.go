package sim_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accountwatch/accountwatch/pkg/sim"
	"github.com/accountwatch/accountwatch/pkg/sim/simtest"
)

// signedV3 builds a POST / request signed with ACS3-HMAC-SHA256 by the SDK's
// own signer (independent of the simulator's verifier).
func signedV3(t *testing.T, base, action, version string, query map[string]string, secret, nonce string, date time.Time) *http.Request {
	t.Helper()
	u, _ := url.Parse(base)
	q := map[string]*string{}
	vals := url.Values{}
	for k, v := range query {
		q[k] = dara.String(v)
		vals.Set(k, v)
	}
	sum := sha256.Sum256(nil)
	payload := hex.EncodeToString(sum[:])
	headers := map[string]*string{
		"host": dara.String(u.Host), "x-acs-action": dara.String(action), "x-acs-version": dara.String(version),
		"x-acs-date": dara.String(date.UTC().Format("2006-01-02T15:04:05Z")), "x-acs-signature-nonce": dara.String(nonce),
		"x-acs-content-sha256": dara.String(payload),
	}
	dr := &dara.Request{Method: dara.String("POST"), Pathname: dara.String("/"), Query: q, Headers: headers}
	auth := openapiutil.GetAuthorization(dr, dara.String("ACS3-HMAC-SHA256"), dara.String(payload), dara.String(simtest.AccessKeyID), dara.String(secret))
	req, _ := http.NewRequest("POST", base+"/?"+vals.Encode(), nil)
	for k, v := range headers {
		if k != "host" {
			req.Header.Set(k, *v)
		}
	}
	req.Header.Set("Authorization", *auth)
	return req
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read to the end: the answer ends only once the server has checked it
	// against its document (simtest.Start).
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestSignatureVerification(t *testing.T) {
	_, base := simtest.Start(t, simtest.Seed())
	now := time.Now()
	owner := map[string]string{"OwnerId": "1234567890123456"}
	ok := signedV3(t, base, "GetCustomerAccountInfo", sim.BSSVersion, owner, simtest.AccessSecret, "n-1", now)
	if code, m := do(t, ok); code != 200 || m["Code"] != "Success" {
		t.Fatalf("valid signature rejected: %d %v", code, m)
	}
	replay := signedV3(t, base, "GetCustomerAccountInfo", sim.BSSVersion, owner, simtest.AccessSecret, "n-1", now)
	tampered := signedV3(t, base, "GetCustomerAccountInfo", sim.BSSVersion, owner, simtest.AccessSecret, "n-2", now)
	tampered.URL.RawQuery = "OwnerId=1234567890123457"
	badBody := signedV3(t, base, "GetCustomerAccountInfo", sim.BSSVersion, owner, simtest.AccessSecret, "n-3", now)
	badBody.Body = io.NopCloser(strings.NewReader("x=1"))
	badBody.ContentLength = 3
	malformed := signedV3(t, base, "GetCustomerAccountInfo", sim.BSSVersion, owner, simtest.AccessSecret, "n-4", now)
	malformed.Header.Set("Authorization", "ACS3-HMAC-SHA256 Credential=x")
	cases := []struct {
		name string
		req  *http.Request
		code string
	}{
		{"replayed nonce", replay, "SignatureNonceUsed"},
		{"tampered query", tampered, "SignatureDoesNotMatch"},
		{"body does not match its hash", badBody, "SignatureDoesNotMatch"},
		{"wrong secret", signedV3(t, base, "GetCustomerAccountInfo", sim.BSSVersion, owner, "wrong", "n-5", now), "SignatureDoesNotMatch"},
		{"stale date", signedV3(t, base, "GetCustomerAccountInfo", sim.BSSVersion, owner, simtest.AccessSecret, "n-6", now.Add(-time.Hour)), "InvalidTimeStamp.Expired"},
		{"malformed header", malformed, "IncompleteSignature"},
		{"unknown action", signedV3(t, base, "DeleteEverything", sim.BSSVersion, owner, simtest.AccessSecret, "n-7", now), "InvalidAction.NotFound"},
		{"wrong version", signedV3(t, base, "GetCustomerAccountInfo", "2020-01-01", owner, simtest.AccessSecret, "n-8", now), "InvalidVersion"},
	}
	for _, c := range cases {
		code, m := do(t, c.req)
		if code < 400 || m["Code"] != c.code {
			t.Errorf("%s: HTTP %d %v, want %s", c.name, code, m["Code"], c.code)
		}
		for _, k := range []string{"RequestId", "HostId", "Code", "Message", "Recommend"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: error body lacks %s", c.name, k)
			}
		}
	}
}

func TestLegacyRPCSignature(t *testing.T) {
	_, base := simtest.Start(t, simtest.Seed())
	params := map[string]*string{
		"Action": dara.String("GetCustomerList"), "Version": dara.String(sim.BSSVersion), "Format": dara.String("JSON"),
		"AccessKeyId": dara.String(simtest.AccessKeyID), "SignatureMethod": dara.String("HMAC-SHA1"), "SignatureVersion": dara.String("1.0"),
		"SignatureNonce": dara.String("legacy-1"), "Timestamp": dara.String(time.Now().UTC().Format("2006-01-02T15:04:05Z")),
	}
	sig := openapiutil.GetRPCSignature(params, dara.String("GET"), dara.String(simtest.AccessSecret))
	v := url.Values{}
	for k, p := range params {
		v.Set(k, *p)
	}
	v.Set("Signature", *sig)
	req, _ := http.NewRequest("GET", base+"/?"+v.Encode(), nil)
	if code, m := do(t, req); code != 200 || m["Code"] != "200" {
		t.Fatalf("legacy signature rejected: %d %v", code, m)
	}
	v.Set("SignatureNonce", "legacy-2")
	req, _ = http.NewRequest("GET", base+"/?"+v.Encode(), nil)
	if code, m := do(t, req); code != 400 || m["Code"] != "SignatureDoesNotMatch" {
		t.Fatalf("changed parameter accepted: %d %v", code, m)
	}
}

func TestAdminAPI(t *testing.T) {
	s, base := simtest.Start(t, simtest.Seed(), sim.WithAdminToken("adm"))
	call := func(method, path, body string, auth bool) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if auth {
			req.Header.Set("Authorization", "Bearer adm")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		contains                 string
	}{
		{"no token", "GET", "/admin/state", "", false, 401, "admin token"},
		{"state", "GET", "/admin/state?limit=1", "", true, 200, `"activeplatform": 3`},
		{"set status", "PATCH", "/admin/activeplatform/accounts/1000123", `{"status":"credit hold","current_debt":512.4}`, true, 200, `"current_debt": "512.4"`},
		{"unknown field", "PATCH", "/admin/activeplatform/accounts/1000123", `{"colour":"red"}`, true, 400, "unknown field"},
		{"unknown account", "PATCH", "/admin/activeplatform/accounts/1", `{"status":"active"}`, true, 404, "not found"},
		{"freeze", "PATCH", "/admin/bss/customers/1234567890123456", `{"hosting_status":"FREEZE"}`, true, 200, "FREEZE"},
		{"profile", "PATCH", "/admin/cams/" + simtest.Space + "/8613800000001", `{"Websites":["https://a","https://b"]}`, true, 200, "https://b"},
		{"fault", "PUT", "/admin/faults/ap.get", `{"status":503,"times":2}`, true, 204, ""},
		{"bad fault", "PUT", "/admin/faults/ap.get", `{"body":"explode"}`, true, 400, "fault body"},
		{"unknown endpoint", "PUT", "/admin/faults/nope", `{"status":503}`, true, 400, "unknown endpoint"},
		{"list faults", "GET", "/admin/faults", "", true, 200, `"ap.get"`},
		{"change", "POST", "/admin/changes", `{"activeplatform":{"id":1000125,"remove":true}}`, true, 204, ""},
		{"two parts", "POST", "/admin/changes", `{"activeplatform":{"id":1},"bss":{"uid":"x"}}`, true, 400, "exactly one"},
	}
	for _, c := range cases {
		status, body := call(c.method, c.path, c.body, c.auth)
		if status != c.status || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}
	if a, _ := s.State.APAccount(1000123); a.Status != "credit hold" || *a.CurrentDebt != "512.4" {
		t.Fatalf("state %+v", a)
	}
	if _, ok := s.State.APAccount(1000125); ok {
		t.Fatal("removed account still there")
	}
}

func TestAPListValidationAndFilters(t *testing.T) {
	_, base := simtest.Start(t, simtest.Seed())
	get := func(q string) (int, []map[string]any) {
		resp, err := http.Get(base + "/api/vendor/v1/accounts.json?api_token=" + simtest.APToken + "&sorting%5Breversed%5D=false&" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, _ := get("per_page=abc"); code != 422 {
		t.Fatalf("bad per_page: %d", code)
	}
	if code, _ := get("filters[updated_at]=yesterday"); code != 422 {
		t.Fatalf("bad filter: %d", code)
	}
	code, list := get("filters[status]=credit%20hold")
	if code != 200 || len(list) != 1 || list[0]["id"].(float64) != 1000124 {
		t.Fatalf("status filter: %d %v", code, list)
	}
	if _, ok := list[0]["balance"].(float64); !ok {
		t.Fatal("balance_as_number must send a JSON number")
	}
}

func TestScenario(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sc.yaml")
	os.WriteFile(path, []byte(`steps:
  - after: 1ms
    note: freeze
    bss: {uid: "1234567890123456", set: {hosting_status: FREEZE}}
  - after: 1ms
    activeplatform: {id: 1000123, set: {status: "credit hold"}}
  - after: 1ms
    fault: {endpoint: ap.get, fault: {status: 503, times: 1}}
`), 0o600)
	sc, err := sim.LoadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := simtest.Start(t, simtest.Seed())
	s.Run(context.Background(), sc, slogDiscard())
	if c, _ := s.State.Customer("1234567890123456"); c.HostingStatus != "FREEZE" {
		t.Fatal("scenario step 1 not applied")
	}
	if a, _ := s.State.APAccount(1000123); a.Status != "credit hold" {
		t.Fatal("scenario step 2 not applied")
	}
	if _, ok := s.Faults.List()["ap.get"]; !ok {
		t.Fatal("scenario fault not set")
	}
	os.WriteFile(path, []byte("steps:\n  - after: 1s\n    activeplatfrom: {id: 1}\n"), 0o600)
	if _, err := sim.LoadScenario(path); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("typo must be reported with its line: %v", err)
	}
}

func TestShippedSeedAndScenarioLoad(t *testing.T) {
	root := filepath.Join("..", "..", "deploy", "dev")
	seed, err := sim.LoadSeed(filepath.Join(root, "seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.New(seed); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.LoadScenario(filepath.Join(root, "scenario.yaml")); err != nil {
		t.Fatal(err)
	}
}

func TestSeedValidation(t *testing.T) {
	cases := map[string]func(*sim.Seed){
		"duplicate id": func(s *sim.Seed) {
			s.ActivePlatform.Accounts = append(s.ActivePlatform.Accounts, s.ActivePlatform.Accounts[0])
		},
		"bad money": func(s *sim.Seed) { lots := "lots"; s.ActivePlatform.Accounts[0].Balance = &lots },
		"nameless attribute": func(s *sim.Seed) {
			s.ActivePlatform.Accounts[0].CustomAttributes = append(s.ActivePlatform.Accounts[0].CustomAttributes, sim.Attribute{Value: 1})
		},
		"duplicate uid": func(s *sim.Seed) { s.Alibaba.Customers = append(s.Alibaba.Customers, s.Alibaba.Customers[0]) },
		"no secret":     func(s *sim.Seed) { s.Alibaba.Credentials[0].AccessKeySecret = "" },
		"overlap":       func(s *sim.Seed) { s.ActivePlatform.Generate.Count, s.ActivePlatform.Generate.StartID = 5, 1000122 },
	}
	for name, mutate := range cases {
		seed := simtest.Seed()
		mutate(seed)
		if _, err := sim.New(seed); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestCollectorCountsRequests(t *testing.T) {
	s, base := simtest.Start(t, simtest.Seed())
	http.Get(base + "/api/vendor/v1/accounts/1000123.json?api_token=" + simtest.APToken)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	n, err := testutil.GatherAndCount(reg, "aw_sim_requests_total")
	if err != nil || n != 1 {
		t.Fatalf("%d series, %v", n, err)
	}
	if v := testutil.ToFloat64(s.Collector()); v != 1 {
		t.Fatalf("ap.get counted %v", v)
	}
}

// TestAPPaging: pages cut the sorted accounts into per_page runs, with and
// without a filter, and a page past the end is empty with the same total.
func TestAPPaging(t *testing.T) {
	seed := simtest.Seed()
	seed.ActivePlatform.Generate.Count = 25
	st, err := sim.NewState(seed, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	all, total := st.APPage(1, 1000, sim.APFilter{})
	if total != len(all) || total != len(seed.ActivePlatform.Accounts)+25 {
		t.Fatalf("one page of everything: %d accounts, total %d", len(all), total)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Fatalf("not sorted by id at %d", i)
		}
	}
	active := 0
	for _, a := range all {
		if a.Status == "active" {
			active++
		}
	}
	for _, tc := range []struct {
		name   string
		filter sim.APFilter
		want   int
	}{
		{"unfiltered", sim.APFilter{}, len(all)},
		{"status", sim.APFilter{Status: "active"}, active},
		{"updated since long ago", sim.APFilter{UpdatedSince: time.Unix(1, 0)}, len(all)},
	} {
		for _, per := range []int{1, 7, len(all), len(all) + 3} {
			var seen []int64
			for page := 1; page <= tc.want/per+2; page++ {
				got, total := st.APPage(page, per, tc.filter)
				if total != tc.want || len(got) > per {
					t.Fatalf("%s per %d page %d: %d accounts, total %d (want %d)", tc.name, per, page, len(got), total, tc.want)
				}
				for _, a := range got {
					seen = append(seen, a.ID)
				}
			}
			if len(seen) != tc.want {
				t.Fatalf("%s per %d: %d accounts over all pages, want %d", tc.name, per, len(seen), tc.want)
			}
			j := 0
			for _, a := range all {
				if tc.filter.Status == "" || a.Status == tc.filter.Status {
					if seen[j] != a.ID {
						t.Fatalf("%s per %d: account %d is %d, want %d", tc.name, per, j, seen[j], a.ID)
					}
					j++
				}
			}
		}
	}
}

var nonce atomic.Int64

// action calls an Alibaba action signed as the SDK signs it and returns the
// HTTP status and the body's Code.
func action(t *testing.T, base, name string, params map[string]string) (int, string) {
	t.Helper()
	version := sim.BSSVersion
	if strings.HasPrefix(name, "Query") {
		version = sim.CAMSVersion
	}
	req := signedV3(t, base, name, version, params, simtest.AccessSecret, fmt.Sprint("n-", nonce.Add(1)), time.Now())
	code, m := do(t, req)
	c, _ := m["Code"].(string)
	return code, c
}

// TestDocumentedErrors: the errors of the documents' tables, with the HTTP
// statuses the tables give, and the required parameters enforced.
func TestDocumentedErrors(t *testing.T) {
	seed := simtest.Seed()
	s, base := simtest.Start(t, seed)
	denied := simtest.Seed()
	denied.Alibaba.Credentials[0].Deny = []string{"GetCustomerList", "QueryChatappPhoneNumbers"}
	_, deniedBase := simtest.Start(t, denied)
	unsub := simtest.Seed()
	unsub.Alibaba.Credentials[0].Unsubscribed = []string{"cams"}
	_, unsubBase := simtest.Start(t, unsub)
	noCustomers := simtest.Seed()
	noCustomers.Alibaba.Customers = nil
	_, emptyBase := simtest.Start(t, noCustomers)
	profile := map[string]string{"CustSpaceId": simtest.Space, "PhoneNumber": "8613800000001"}
	for _, c := range []struct {
		name, base, action string
		params             map[string]string
		status             int
		code               string
	}{
		{"BSS NotAuthorized", deniedBase, "GetCustomerList", nil, 400, "NotAuthorized"},
		{"BSS VnoNoDataError, an unknown customer", base, "GetCustomerAccountInfo", map[string]string{"OwnerId": "42"}, 401, "VnoNoDataError"},
		{"BSS VnoNoDataError, no customer named", base, "GetCustomerAccountInfo", nil, 401, "VnoNoDataError"},
		{"BSS VnoNoDataError, no customers", emptyBase, "GetCustomerList", nil, 401, "VnoNoDataError"},
		{"CreateAgAccount requires LoginEmail", base, "CreateAgAccount", map[string]string{"AccountAttr": "1"}, 400, "MissingLoginEmail"},
		{"CreateAgAccount requires AccountAttr", base, "CreateAgAccount", map[string]string{"LoginEmail": "a@partner.example"}, 400, "MissingAccountAttr"},
		{"CreateAgAccount domain", base, "CreateAgAccount", map[string]string{"LoginEmail": "a@else.example", "AccountAttr": "1"}, 200, "EMAIL_DOMAIN_NOT_AUTHORIZED"},
		{"CAMS Product.Unsubscript", unsubBase, "QueryPhoneBusinessProfile", profile, 400, "Product.Unsubscript"},
		{"CAMS Ram.PermissionDeny", deniedBase, "QueryChatappPhoneNumbers", map[string]string{"CustSpaceId": simtest.Space}, 400, "Ram.PermissionDeny"},
		{"CAMS Unknown.ResourceOwnerId", base, "QueryPhoneBusinessProfile", map[string]string{"CustSpaceId": "999", "PhoneNumber": "1"}, 400, "Unknown.ResourceOwnerId"},
		{"CAMS requires PhoneNumber", base, "QueryPhoneBusinessProfile", map[string]string{"CustSpaceId": simtest.Space}, 400, "MissingPhoneNumber"},
		{"CAMS requires CustSpaceId", base, "QueryPhoneBusinessProfile", map[string]string{"PhoneNumber": "1"}, 400, "MissingCustSpaceId"},
	} {
		if status, code := action(t, c.base, c.action, c.params); status != c.status || code != c.code {
			t.Errorf("%s: HTTP %d %s, want %d %s", c.name, status, code, c.status, c.code)
		}
	}
	s.Faults.Set("cams.QueryPhoneBusinessProfile", sim.Fault{Throttle: true, Times: 1})
	if status, code := action(t, base, "QueryPhoneBusinessProfile", profile); status != 400 || code != "System.LimitControl" {
		t.Errorf("CAMS System.LimitControl: HTTP %d %s", status, code)
	}
	s.Faults.Set("bss.GetCustomerAccountInfo", sim.Fault{Status: 500, Times: 1})
	if status, code := action(t, base, "GetCustomerAccountInfo", map[string]string{"OwnerId": "1234567890123456"}); status != 500 || code != "InternalError" {
		t.Errorf("BSS InternalError: HTTP %d %s", status, code)
	}
	resp, err := http.Get(base + "/api/vendor/v1/accounts.json?api_token=" + simtest.APToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 422 {
		t.Errorf("a listing without sorting[reversed] (required by its document): HTTP %d", resp.StatusCode)
	}
}

// TestAnswersAreTheDocuments: every answer of both modes validates against
// the schema of its document (simtest.Start holds each answer to it; this
// asks for every kind of answer, and proves they were checked).
func TestAnswersAreTheDocuments(t *testing.T) {
	for _, opts := range [][]sim.Option{nil, {sim.WithVariation(11)}} {
		seed := simtest.Seed()
		seed.ActivePlatform.Generate.Count = 20
		_, base := simtest.Start(t, seed, opts...)
		for range 5 {
			for _, path := range []string{"/api/vendor/v1/accounts.json?sorting%5Breversed%5D=false&per_page=7&api_token=", "/api/vendor/v1/accounts/1000123.json?api_token="} {
				resp, err := http.Get(base + path + simtest.APToken)
				if err != nil || resp.StatusCode != 200 {
					t.Fatal(path, err)
				}
				io.Copy(io.Discard, resp.Body) // to its end: checked by then
				resp.Body.Close()
			}
			for name, params := range map[string]map[string]string{
				"GetCustomerAccountInfo":    {"OwnerId": "1234567890123457"},
				"GetCustomerList":           nil,
				"QueryPhoneBusinessProfile": {"CustSpaceId": simtest.Space, "PhoneNumber": "8613800000001"},
				"QueryChatappPhoneNumbers":  {"CustSpaceId": simtest.Space},
				"CreateAgAccount":           {"LoginEmail": "ops@partner.example", "AccountAttr": "1"},
			} {
				if status, _ := action(t, base, name, params); status != 200 {
					t.Fatalf("%s: HTTP %d", name, status)
				}
			}
		}
	}
	for _, schema := range []string{"activeplatform.GetListOfAccounts", "activeplatform.GetAccountInfoByID", "bss.GetCustomerAccountInfo",
		"bss.GetCustomerList", "bss.CreateAgAccount", "cams.QueryPhoneBusinessProfile", "cams.QueryChatappPhoneNumbers"} {
		if simtest.Checked(schema) < 10 {
			t.Errorf("%s: %d answers checked", schema, simtest.Checked(schema))
		}
	}
}
