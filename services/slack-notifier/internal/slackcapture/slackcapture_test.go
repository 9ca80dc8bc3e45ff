package slackcapture

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

func post(t *testing.T, s *Server, channel string) *http.Response {
	t.Helper()
	resp, err := http.PostForm(s.URL()+"chat.postMessage", url.Values{"channel": {channel}, "text": {"hi"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The limit is Slack's per channel: a burst passes, the next post is a 429
// with Retry-After, and a post while it stands is counted.
func TestLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit Limit
		// want is each post's status and Retry-After to #a.
		want  [][2]int
		other int // a post to #b then: its status
		// inside is how many posts came inside a Retry-After.
		inside int
	}{
		{"burst then 429", Limit{PerSecond: 0.001, Burst: 3}, [][2]int{{200, 0}, {200, 0}, {200, 0}, {429, 1000}, {429, 1000}}, 200, 1},
		{"a burst of one", Limit{PerSecond: 0.001, Burst: 1}, [][2]int{{200, 0}, {429, 1000}}, 200, 0},
		{"workspace throttle", Limit{PerSecond: 0.001, Burst: 10, ThrottleEvery: 2, ThrottleFor: 7}, [][2]int{{200, 0}, {429, 7}, {429, 7}}, 200, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(nil)
			defer s.Stop()
			s.SetLimit(&tc.limit)
			for i, w := range tc.want {
				resp := post(t, s, "#a")
				ra := resp.Header.Get("Retry-After")
				if resp.StatusCode != w[0] {
					t.Fatalf("post %d: %d, want %d", i+1, resp.StatusCode, w[0])
				}
				// A refill of 0.001/s: up to 1000 s until the next token.
				if w[0] == 429 && w[1] != 1000 && ra != strconv.Itoa(w[1]) {
					t.Fatalf("post %d: Retry-After %q, want %d", i+1, ra, w[1])
				}
				if w[0] == 429 && ra == "" {
					t.Fatalf("post %d: 429 without Retry-After", i+1)
				}
			}
			if got := post(t, s, "#b").StatusCode; got != tc.other {
				t.Fatalf("another channel: %d, want %d (the limit is per channel)", got, tc.other)
			}
			if got := s.InsideRetryAfter(); got != tc.inside {
				t.Fatalf("inside a Retry-After: %d, want %d", got, tc.inside)
			}
			if got := len(s.Posted("chat.postMessage")); got == 0 {
				t.Fatal("no post recorded as accepted")
			}
		})
	}
}
