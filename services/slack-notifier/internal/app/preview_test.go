package app_test

import (
	"encoding/json"
	"fmt"
	"html"
	"regexp"
	"strings"

	"github.com/accountwatch/accountwatch/services/slack-notifier/internal/slackcapture"
)

// A Block Kit preview of captured calls, for the screenshots of
// docs/screenshots: the channel's thread as Slack lays it out (header,
// sections with fields, context, dividers inside the attachment's colour
// bar), rendered from the JSON the notifier posted, not from its own types.

type block struct {
	Type     string    `json:"type"`
	Text     *textObj  `json:"text"`
	Fields   []textObj `json:"fields"`
	Elements []textObj `json:"elements"`
}

type textObj struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type attachment struct {
	Color  string  `json:"color"`
	Blocks []block `json:"blocks"`
}

var (
	reDate = regexp.MustCompile(`<!date\^[^|>]*\|([^>]*)>`)
	reLink = regexp.MustCompile(`<(https?://[^|>]+)\|([^>]*)>`)
	reBold = regexp.MustCompile(`\*([^*\n]+)\*`)
	reCode = regexp.MustCompile("`([^`]+)`")
	reIt   = regexp.MustCompile(`(^|\s)_([^_\n]+)_`)
)

// mrkdwnHTML turns Slack mrkdwn (already entity-escaped by the notifier) into HTML.
func mrkdwnHTML(s string, plain bool) string {
	if plain {
		return html.EscapeString(s)
	}
	s = reDate.ReplaceAllString(s, "$1")
	s = reLink.ReplaceAllString(s, `<a href="$1">$2</a>`)
	s = reBold.ReplaceAllString(s, "<b>$1</b>")
	s = reCode.ReplaceAllString(s, "<code>$1</code>")
	s = reIt.ReplaceAllString(s, "$1<i>$2</i>")
	return strings.ReplaceAll(s, "\n", "<br>")
}

func renderAttachments(raw string) string {
	var atts []attachment
	if err := json.Unmarshal([]byte(raw), &atts); err != nil {
		return "<pre>" + html.EscapeString(raw) + "</pre>"
	}
	var b strings.Builder
	for _, a := range atts {
		fmt.Fprintf(&b, `<div class="att" style="border-left-color:%s">`, html.EscapeString(a.Color))
		for _, bl := range a.Blocks {
			switch bl.Type {
			case "header":
				fmt.Fprintf(&b, `<div class="hdr">%s</div>`, mrkdwnHTML(bl.Text.Text, true))
			case "section":
				if bl.Text != nil {
					fmt.Fprintf(&b, `<div class="sec">%s</div>`, mrkdwnHTML(bl.Text.Text, false))
				}
				if len(bl.Fields) > 0 {
					b.WriteString(`<div class="fields">`)
					for _, f := range bl.Fields {
						fmt.Fprintf(&b, `<div>%s</div>`, mrkdwnHTML(f.Text, false))
					}
					b.WriteString(`</div>`)
				}
			case "context":
				b.WriteString(`<div class="ctx">`)
				for i, e := range bl.Elements {
					if i > 0 {
						b.WriteString(" &nbsp;·&nbsp; ")
					}
					b.WriteString(mrkdwnHTML(e.Text, false))
				}
				b.WriteString(`</div>`)
			case "divider":
				b.WriteString(`<hr>`)
			}
		}
		b.WriteString(`</div>`)
	}
	return b.String()
}

const previewCSS = `body{font-family:Lato,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:15px;color:#1d1c1d;background:#fff;margin:0;padding:20px;width:860px}
h1{font-size:18px;margin:0 0 4px}.sub{color:#616061;margin:0 0 16px;font-size:13px}
.msg{display:flex;gap:10px;margin:0 0 14px}.av{width:36px;height:36px;border-radius:6px;background:#4a154b;color:#fff;font-weight:bold;display:flex;align-items:center;justify-content:center;flex:none}
.who{font-weight:900}.who span{font-weight:normal;color:#616061;font-size:12px;margin-left:6px}.body{flex:1}
.att{border-left:4px solid #ddd;border-radius:4px;padding:4px 12px;margin-top:4px}.hdr{font-weight:900;font-size:17px;margin:6px 0}
.sec{margin:6px 0}.fields{display:grid;grid-template-columns:1fr 1fr;gap:8px 24px;margin:8px 0}.ctx{color:#616061;font-size:12px;margin:8px 0}
code{background:#f4f4f4;border:1px solid #e2e2e2;border-radius:3px;padding:0 3px;font-size:12px;color:#e01e5a}a{color:#1264a3;text-decoration:none}
.thread{margin-left:46px;border-left:2px solid #e8e8e8;padding-left:14px}.tag{display:inline-block;font-size:11px;background:#f8f8f8;border:1px solid #ddd;border-radius:10px;padding:0 8px;margin-left:6px;color:#616061}
hr{border:0;border-top:1px solid #eee}`

// previewHTML lays out the calls as the channel and the account's thread:
// each version of the opening message (chat.update in place) and the replies.
func previewHTML(title string, calls []slackcapture.Call, from, to int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>%s</style></head><body><h1>%s</h1>", previewCSS, html.EscapeString(title))
	b.WriteString(`<p class="sub">#ops · rendered from the Block Kit JSON the notifier posted to slacktest (chat.postMessage, chat.update)</p>`)
	msg := func(c slackcapture.Call, tag string) {
		fmt.Fprintf(&b, `<div class="msg"><div class="av">aw</div><div class="body"><div class="who">accountwatch<span>%s</span><span class="tag">%s</span></div>%s</div></div>`,
			c.At.UTC().Format("15:04:05"), html.EscapeString(tag), renderAttachments(c.Attachments))
	}
	for i, c := range calls {
		if i < from || i >= to {
			continue
		}
		switch {
		case c.Method == "chat.update":
			msg(c, fmt.Sprintf("%d · chat.update: the opening message, edited in place", i+1))
		case c.ThreadTS == "":
			msg(c, fmt.Sprintf("%d · opens the account's thread in %s", i+1, c.Channel))
		default:
			b.WriteString(`<div class="thread">`)
			msg(c, fmt.Sprintf("%d · reply in the thread", i+1))
			b.WriteString(`</div>`)
		}
	}
	b.WriteString("</body></html>")
	return b.String()
}
