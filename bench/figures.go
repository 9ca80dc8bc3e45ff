package main

import "time"

func at(of, op string, x float64) *Target { return &Target{Of: of, Op: op, X: x} }

// suites are the benchmarks `make bench` runs, in order, and the figures
// each gives: every figure beside the raw baseline its benchmark measured
// in the same run. The targets are issue 20's.
var suites = []Suite{
	{
		Name: "poller", Dir: "services/poller", Pkg: ".", Bench: "^BenchmarkPoller1M$", Timeout: 40 * time.Minute,
		ShortEnv: map[string]string{"AW_BENCH_ACCOUNTS": "20000", "AW_BENCH_CYCLES": "2"},
		Figures: []Spec{
			{Name: "poller.scan", Bench: "BenchmarkPoller1M", Metric: "polls/s", Baseline: "bare-accounts/s", Target: at("ratio", ">=", 0.7),
				Limit: "poller.scan.limit", Ceiling: "poller.scan.ceiling",
				Note: "a million accounts, 1% changing per interval, server default sync: the median cycle's accounts/s against the bare listing's"},
			{Name: "poller.scan.limit", Bench: "BenchmarkPoller1M", Metric: "polls/s", Baseline: "limit-accounts/s", BaseUnit: "limit-acc/s",
				Note: "the same cycles against the shared core's limit measured in the same run: the bare listing with, beside it, a raw client doing the server's work for as many changes (the record read, its compare-and-swap write, the event's publish)"},
			{Name: "poller.scan.ceiling", Bench: "BenchmarkPoller1M", Metric: "limit-accounts/s", Unit: "accounts/s", Baseline: "limit-bare-accounts/s", BaseUnit: "bare-accounts/s",
				Note: "that limit against the bare listing measured beside it: the most a poller could reach on the core it shares with the server; poller.scan's 0.7 is out of reach where this is under it"},
			{Name: "poller.scan.cpu", Bench: "BenchmarkPoller1M", Metric: "cpu-ms/1000polls", Unit: "ms/1000"},
			{Name: "poller.scan.quiet", Bench: "BenchmarkPoller1M", Metric: "quiet-polls/s", Unit: "polls/s", Baseline: "quiet-bare-accounts/s", BaseUnit: "bare-accounts/s",
				Note: "the same poller with no account changing: the listing, fingerprints and watch list alone"},
			{Name: "poller.change_cost", Bench: "BenchmarkPoller1M", Metric: "change-µs", Unit: "µs", Baseline: "budget-µs/change", BaseUnit: "µs(budget)",
				Note: "a cycle's time beyond the quiet cycle's, per change (poller and server on one core), against the time per change poller.scan's 0.7 leaves"},
			{Name: "poller.peak_rss", Bench: "BenchmarkPoller1M", Metric: "peak-rss-MB", Unit: "MB", Target: at("value", "<=", 1500),
				Note: "the poller's VmHWM over discovery, the steady state and a start on a million records"},
			{Name: "poller.server_peak_rss", Bench: "BenchmarkPoller1M", Metric: "server-peak-rss-MB", Unit: "MB",
				Note: "the VmHWM of the process hosting the server (and the harness) through discovery and the steady state"},
			{Name: "poller.discovery", Bench: "BenchmarkPoller1M", Metric: "discovery-s", Unit: "s", Baseline: "raw-writes-s", BaseUnit: "s(raw-pub)", Target: at("value", "<=", 120),
				Note: "the first scan of an empty state: every watch-list entry and baseline record written; baseline: as many raw async publishes of those sizes"},
			{Name: "poller.startup", Bench: "BenchmarkPoller1M", Metric: "startup-s", Unit: "s", Baseline: "raw-load-s", BaseUnit: "s(raw-read)", Target: at("value", "<=", 30),
				Note: "a start on a million stored records until the runner polls; baseline: a raw ordered consumer reading the state and watch-list streams"},
			{Name: "poller.restart_scan", Bench: "BenchmarkPoller1M", Metric: "restart-scan-s", Unit: "s", Baseline: "bare-listing-s", BaseUnit: "s(bare)",
				Note: "the first scan after that start (no fingerprints yet: recognised by the stored digests)"},
			{Name: "poller.change_p99", Bench: "BenchmarkPoller1M", Metric: "p99-ms", Unit: "ms", Baseline: "interval-ms", BaseUnit: "ms(interval)",
				Note: "change in the simulator to its event in the stream, dominated by the interval"},
			{Name: "poller.fsync.scan", Bench: "BenchmarkPoller1M", Metric: "fsync-polls/s", Unit: "polls/s", Baseline: "fsync-bare-accounts/s", BaseUnit: "bare-accounts/s",
				Note: "fsync on every write"},
			{Name: "poller.fsync.limit", Bench: "BenchmarkPoller1M", Metric: "fsync-polls/s", Unit: "polls/s", Baseline: "fsync-limit-accounts/s", BaseUnit: "limit-acc/s",
				Note: "fsync on every write, against the disk's limit: the bare listing, or the cycle's changes written as raw synced publishes, whichever is slower"},
			{Name: "poller.fsync.peak_rss", Bench: "BenchmarkPoller1M", Metric: "fsync-peak-rss-MB", Unit: "MB", Target: at("value", "<=", 1500)},
			{Name: "poller.suite", Bench: "BenchmarkPoller1M", Metric: "suite-s", Unit: "s",
				Note: "the suite's wall time, its build and simulator start included: discovery, the steady cycles, the restart, the fsync cycles"},
		},
	},
	{
		Name: "publish", Dir: "pkg", Pkg: "./eventbus", Bench: "^BenchmarkPublish$", Timeout: 10 * time.Minute,
		ShortEnv: map[string]string{"AW_BENCH_PUBLISH": "100000"},
		Figures: []Spec{
			{Name: "publish.cloudevent", Bench: "BenchmarkPublish/sync=default", Metric: "events/s", Baseline: "raw-msgs/s",
				Target: at("ratio", ">=", 0.6), Note: "Publisher.PublishAll of CloudEvents against raw PublishMsgAsync of the same bytes with dedup ids, server default sync"},
			{Name: "publish.cloudevent.fsync", Bench: "BenchmarkPublish/sync=always", Metric: "events/s", Baseline: "raw-msgs/s",
				Note: "the same with fsync on every write"},
		},
	},
	{
		Name: "webhook", Dir: "services/webhook-dispatcher", Pkg: ".", Bench: "^(BenchmarkEndpoints10k|BenchmarkLatency1000)$", Timeout: 30 * time.Minute,
		ShortEnv: map[string]string{"AW_BENCH_ENDPOINTS": "1000", "AW_BENCH_ENDPOINT_EVENTS": "10", "AW_BENCH_WEBHOOK_SECONDS": "3"},
		Figures: []Spec{
			{Name: "webhook10k.p99", Bench: "BenchmarkEndpoints10k", Metric: "p99-ms", Unit: "ms", Baseline: "healthy-p99-ms", BaseUnit: "ms(healthy)", Target: at("ratio", "<=", 1.5),
				Note: "ten thousand endpoints, 10% answering in 5 s and 10% answering 503: the healthy endpoints' publish→receipt p99 against an all-healthy run of the same endpoints"},
			{Name: "webhook10k.p50", Bench: "BenchmarkEndpoints10k", Metric: "p50-ms", Unit: "ms", Baseline: "healthy-p50-ms", BaseUnit: "ms(healthy)"},
			{Name: "webhook10k.throughput", Bench: "BenchmarkEndpoints10k", Metric: "deliveries/s", Baseline: "raw-posts/s", Target: at("ratio", ">=", 0.5),
				Limit: "webhook10k.throughput.limit", Ceiling: "webhook10k.limit",
				Note: "the healthy endpoints' deliveries/s in the sick run against a raw POST load of the same bodies to the same endpoints"},
			{Name: "webhook10k.throughput.limit", Bench: "BenchmarkEndpoints10k", Metric: "deliveries/s", Baseline: "limit-posts/s", BaseUnit: "limit-posts/s",
				Note: "the same deliveries/s against the two shared cores' limit measured in the same run: the sick run's work done raw (the raw load's healthy POSTs and, at once, the 503 hosts' requests, the slow hosts' in flight, a delivery-log record per attempt, the stored hand-offs)"},
			{Name: "webhook10k.limit", Bench: "BenchmarkEndpoints10k", Metric: "limit-posts/s", Unit: "posts/s", Baseline: "raw-posts/s",
				Note: "that limit against the bare raw POST load: the most a dispatcher could reach with the sick run's work on these cores; throughput's 0.5 is out of reach where this is under it"},
			{Name: "webhook10k.healthy_throughput", Bench: "BenchmarkEndpoints10k", Metric: "healthy-deliveries/s", Unit: "deliveries/s", Baseline: "raw-posts/s"},
			{Name: "webhook10k.throughput.headers", Bench: "BenchmarkEndpoints10k", Metric: "deliveries/s", Baseline: "raw-headers-posts/s", BaseUnit: "raw-posts/s(headers)",
				Note: "the same deliveries/s against raw POSTs carrying a delivery's headers (signed once): the ratio left to the dispatcher's own work"},
			{Name: "webhook10k.raw_headers", Bench: "BenchmarkEndpoints10k", Metric: "raw-headers-posts/s", Unit: "posts/s", Baseline: "raw-posts/s",
				Note: "what a delivery's headers cost the raw load itself"},
			{Name: "webhook10k.peak_rss", Bench: "BenchmarkEndpoints10k", Metric: "peak-rss-MB", Unit: "MB", Baseline: "rss-before-MB", BaseUnit: "MB(before)",
				Note: "the process's VmHWM (embedded server with a consumer per endpoint, receivers, dispatcher) against its RSS before the dispatcher started"},
			{Name: "webhook.latency_p50", Bench: "BenchmarkLatency1000", Metric: "p50-ms", Unit: "ms", Baseline: "raw-p50-ms", BaseUnit: "ms(raw-js)",
				Note: "1,000 events/s to one endpoint, publish→receipt, against a raw JetStream publish→read at the same rate"},
			{Name: "webhook.latency_p99", Bench: "BenchmarkLatency1000", Metric: "p99-ms", Unit: "ms", Baseline: "raw-p99-ms", BaseUnit: "ms(raw-js)"},
			{Name: "webhook.latency_rate", Bench: "BenchmarkLatency1000", Metric: "events-in/s", Note: "the rate the events were published at (1,000/s asked)"},
		},
	},
	{
		Name: "slack", Dir: "services/slack-notifier", Pkg: ".", Bench: "^BenchmarkSlack1000$", Timeout: 10 * time.Minute,
		ShortEnv: map[string]string{"AW_BENCH_SLACK_SECONDS": "5"},
		Figures: []Spec{
			{Name: "slack.latency_p50", Bench: "BenchmarkSlack1000", Metric: "p50-ms", Unit: "ms", Baseline: "raw-p50-ms", BaseUnit: "ms(raw-js)",
				Note: "1,000 events/s in 10 channels paced at 1 msg/s each (grouped), publish→accepted, against a raw JetStream publish→read at the same rate"},
			{Name: "slack.latency_p99", Bench: "BenchmarkSlack1000", Metric: "p99-ms", Unit: "ms", Baseline: "raw-p99-ms", BaseUnit: "ms(raw-js)"},
			{Name: "slack.latency_rate", Bench: "BenchmarkSlack1000", Metric: "events-in/s", Note: "the rate the events were published at (1,000/s asked)"},
			{Name: "slack.rate", Bench: "BenchmarkSlack1000", Metric: "msgs/s", Baseline: "allowed-msgs/s", Target: at("ratio", ">=", 0.95),
				Note: "messages posted a second against those Slack's limit allowed (1/s a channel, less the Retry-After windows)"},
			{Name: "slack.inside_retry_after", Bench: "BenchmarkSlack1000", Metric: "inside-retry-after", Unit: "posts", Target: at("value", "<=", 0),
				Note: "posts made to a channel while a Retry-After it was given stood"},
		},
	},
	{
		Name: "email", Dir: "services/email-notifier", Pkg: ".", Bench: "^BenchmarkEmail1000$", Timeout: 10 * time.Minute,
		ShortEnv: map[string]string{"AW_BENCH_EMAIL_SECONDS": "3"},
		Figures: []Spec{
			{Name: "email.latency_p50", Bench: "BenchmarkEmail1000", Metric: "p50-ms", Unit: "ms", Baseline: "raw-p50-ms", BaseUnit: "ms(raw-js)",
				Note: "1,000 events/s, an email each over 8 SMTP connections to the in-process server, publish→accepted, against a raw JetStream publish→read at the same rate"},
			{Name: "email.latency_p99", Bench: "BenchmarkEmail1000", Metric: "p99-ms", Unit: "ms", Baseline: "raw-p99-ms", BaseUnit: "ms(raw-js)"},
			{Name: "email.latency_rate", Bench: "BenchmarkEmail1000", Metric: "events-in/s", Note: "the rate the events were published at (1,000/s asked)"},
		},
	},
	{
		// Ten million events (the benchmark's default): filled (set-up,
		// about a minute and a half), read raw once, replayed, verified.
		Name: "audit", Dir: "pkg", Pkg: "./audit", Bench: "^BenchmarkAudit$", Timeout: 20 * time.Minute,
		ShortEnv: map[string]string{"AW_BENCH_REPLAY_EVENTS": "200000"},
		Figures: []Spec{
			{Name: "audit.replay", Bench: "BenchmarkAudit/replay", Metric: "events/s", Baseline: "raw-msgs/s", Target: at("ratio", ">=", 0.8),
				Note: "ten million events of 10,000 accounts replayed to JSON lines, against a raw ordered consumer reading the same stream in the same run"},
			{Name: "audit.verify", Bench: "BenchmarkAudit/verify", Metric: "events/s", Baseline: "raw-msgs/s",
				Note: "every chain (each event hashed, its link and sequence checked) and the stream's continuity, against the same raw read"},
			{Name: "audit.verify.heap", Bench: "BenchmarkAudit/verify", Metric: "heap-MB", Unit: "MB", Baseline: "heap-MB-tenth", BaseUnit: "MB(1/10th)",
				Note: "the verifier's live heap after all the events (ten million), against after a tenth (a million), 10,000 accounts both: it grows with accounts, not events"},
		},
	},
}
