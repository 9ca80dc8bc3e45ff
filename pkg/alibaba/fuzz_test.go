package alibaba_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/accountwatch/accountwatch/pkg/alibaba"
)

// addDocumented seeds f with the documents' examples of an action
// (testdata/<action>.*.json, copied from the documents) first.
func addDocumented(f *testing.F, action string) {
	files, _ := filepath.Glob(filepath.Join("testdata", action+".*.json"))
	if len(files) == 0 {
		f.Fatalf("no documented example of %s", action)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// More samples: the documents' variants and what they rule out.
var (
	customerSamples = []string{
		`{"Code":"Success","Message":"Successful!","RequestId":"94017C56-1725-5DD9-AB41-B3BAE791D600","Success":true,"Data":{"Mpk":1051360339779133,"LoginEmail":"xxxx@aliyun.com","HostingStatus":"FREEZE","AccountType":"1","CreditLimitStatus":"Freeze","IsCertified":true}}`,
		`{"Data":{"IsCertified":true,"Mpk":"123******567","CreditLimitStatus":"Thaw","HostingStatus":"Trusteeship","LoginEmail":"a***@example.net","AccountType":"1"},"Message":"Successful!","RequestId":"xxxxxx","Success":true,"Code":"Success"}`,
		`{"Code":"Success","Data":null}`,
		`{"Code":"Success","Data":{"HostingStatus":null,"CreditLimitStatus":"Thaw","IsCertified":"false","Mpk":null}}`,
	}
	agSamples = []string{
		`{"Code":"LOGIN_EMAIL_HAS_BEEN_USED","Message":"loginEmail=685741089H@chinaunicom.cn,has used","RequestId":"EAE08A27-386C-579E-966D-8853EC3C5D0E","Success":true,"AgRelationDto":{"Type":"FINACE_CLOUD","Pk":"1728240534507590","RamAdminRoleName":"admin-role","Mpk":"1785287436011964"}}`,
		`{"Code":"Success","Success":true,"AgRelationDto":{"Type":"FINACE_CLOUD","Pk":1728240534507590,"Mpk":1785287436011964}}`,
		`{"Code":"Success","Success":true}`,
	}
	profileSamples = []string{
		`{"RequestId":"R","Code":"OK","Message":"SUCCESS","Data":{"Vertical":"RETAIL","Description":"d","Email":"e@x","Address":"a","ProfilePictureUrl":"https://p","Websites":["https://a","https://b"],"About":"hi"}}`,
		`{"Code":"OK","Data":{"Websites":null}}`,
		`{"Code":"OK","Data":{"Websites":[null,""]}}`,
	}
)

func FuzzDecodeCustomer(f *testing.F) {
	addDocumented(f, "bss.GetCustomerAccountInfo")
	for _, s := range customerSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := alibaba.DecodeCustomer(body)
		if (err == nil) == (c == nil) {
			t.Fatalf("customer %v with error %v", c, err)
		}
	})
}

func FuzzDecodeUIDList(f *testing.F) {
	addDocumented(f, "bss.GetCustomerList")
	f.Add([]byte(`{"Code":"Success","Data":{"UidList":["1234567890123456",1234567890123457]}}`))
	f.Add([]byte(`{"Data":{"UidList":null}}`))
	f.Add([]byte(`{"Data":{"UidList":[""]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		uids, err := alibaba.DecodeUIDList(body)
		if err != nil {
			if uids != nil {
				t.Fatal("uids with an error")
			}
			return
		}
		for _, u := range uids {
			if u == "" {
				t.Fatal("empty uid accepted")
			}
		}
	})
}

func FuzzDecodeAgRelation(f *testing.F) {
	addDocumented(f, "bss.CreateAgAccount")
	for _, s := range agSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rel, used, err := alibaba.DecodeAgRelation(body)
		if err != nil {
			if rel != nil {
				t.Fatal("relation with an error")
			}
			return
		}
		if !used && rel.Pk == "" {
			t.Fatalf("created relation without a uid: %+v", rel)
		}
	})
}

func FuzzDecodeProfile(f *testing.F) {
	addDocumented(f, "cams.QueryPhoneBusinessProfile")
	for _, s := range profileSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := alibaba.DecodeProfile(body)
		if (err == nil) == (p == nil) {
			t.Fatalf("profile %v with error %v", p, err)
		}
		if p != nil {
			for _, w := range p.Websites {
				if w == "" {
					t.Fatal("empty website kept")
				}
			}
		}
	})
}

func FuzzDecodePhoneNumbers(f *testing.F) {
	addDocumented(f, "cams.QueryChatappPhoneNumbers")
	f.Add([]byte(`{"Code":"OK","PhoneNumbers":[{"PhoneNumber":"8613800000001","VerifiedName":"Acme","Status":"CONNECTED"}]}`))
	f.Add([]byte(`{"Code":"OK","PhoneNumbers":[{"PhoneNumber":8613800000001}]}`))
	f.Add([]byte(`{"Code":"OK"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		list, err := alibaba.DecodePhoneNumbers(body)
		if err != nil {
			if list != nil {
				t.Fatal("numbers with an error")
			}
			return
		}
		for _, n := range list {
			if n.PhoneNumber == "" {
				t.Fatal("empty number accepted")
			}
		}
	})
}
