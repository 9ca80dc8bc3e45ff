package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/accountwatch/accountwatch/pkg/detect"
	"github.com/accountwatch/accountwatch/pkg/event"
)

// TestUnchangedAfterStoring: an account observed again as it was is
// unchanged against its record as stored and read back (no write), whether
// or not its observation has a profile, enums or attributes; a change is not.
func TestUnchangedAfterStoring(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	cases := map[string]detect.Observation{
		"enums and attributes": {Name: "Acme", Enums: map[string]event.Value{"status": event.EnumValue("active")}, Attrs: map[string]string{"tier": "gold"}, At: at},
		"nothing but a name":   {Name: "Acme", At: at},
		"a profile":            {Name: "Acme", Profile: map[string]event.Value{event.ProfileFields[0]: {Value: "x"}}, At: at},
	}
	for name, obs := range cases {
		t.Run(name, func(t *testing.T) {
			_, first := detect.Observe(detect.Record{}, obs, detect.DefaultPolicy())
			b, err := json.Marshal(first)
			if err != nil {
				t.Fatal(err)
			}
			var stored detect.Record
			if err := json.Unmarshal(b, &stored); err != nil {
				t.Fatal(err)
			}
			changes, next := detect.Observe(stored, obs, detect.DefaultPolicy())
			if len(changes) != 0 || !unchanged(stored, next) {
				t.Errorf("observed again as it was: %d changes, unchanged %v", len(changes), unchanged(stored, next))
			}
			obs.Name = "Acme 2"
			if _, next := detect.Observe(stored, obs, detect.DefaultPolicy()); unchanged(stored, next) {
				t.Error("a new name is unchanged")
			}
		})
	}
}
