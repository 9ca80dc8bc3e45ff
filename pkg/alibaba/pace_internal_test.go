package alibaba

import (
	"testing"

	"golang.org/x/time/rate"
)

// TestCAMSPacesUnderTheDocumentedLimit: the default pace leaves the
// documented 10 QPS a margin, and a connection asking for less slows every
// connection of its AccessKey; one asking for more does not speed them up.
func TestCAMSPacesUnderTheDocumentedLimit(t *testing.T) {
	tests := []struct {
		name string
		qps  []float64 // the connections' QPS, in order of creation (0: the default)
		want rate.Limit
	}{
		{"default", []float64{0}, CAMSPace},
		{"a slower connection slows the key", []float64{0, 4}, 4},
		{"a faster one does not speed it up", []float64{0, 50}, CAMSPace},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *CAMS
			for _, q := range tc.qps {
				var err error
				c, err = NewCAMS(Config{Endpoint: "cams.example:" + string(rune('1'+i)), Protocol: "http", AccessKeyID: "ak", AccessKeySecret: "s", QPS: q})
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := c.c.pace.lim.Limit(); got != tc.want {
				t.Fatalf("pace %v QPS, want %v", got, tc.want)
			}
			if CAMSPace >= CAMSQPS {
				t.Fatalf("default pace %v is not under the documented %v QPS", CAMSPace, CAMSQPS)
			}
		})
	}
}
