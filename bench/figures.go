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
				Note: "a million accounts, 1% changing per interval, server default sync: the median cycle's accounts/s against the bare listing's"},
			{Name: "poller.scan.cpu", Bench: "BenchmarkPoller1M", Metric: "cpu-ms/1000polls", Unit: "ms/1000"},
			{Name: "poller.peak_rss", Bench: "BenchmarkPoller1M", Metric: "peak-rss-MB", Unit: "MB", Target: at("value", "<=", 1500),
				Note: "the poller's VmHWM over discovery and the steady state"},
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
		Name: "audit", Dir: "pkg", Pkg: "./audit", Bench: "^BenchmarkAudit$", Timeout: 40 * time.Minute,
		ShortEnv: map[string]string{"AW_BENCH_REPLAY_EVENTS": "200000"},
		Figures: []Spec{
			{Name: "audit.replay", Bench: "BenchmarkAudit/replay", Metric: "events/s", Baseline: "raw-msgs/s", Target: at("ratio", ">=", 0.8),
				Note: "ten million events replayed to JSON lines against a raw ordered consumer"},
			{Name: "audit.verify", Bench: "BenchmarkAudit/verify", Metric: "events/s", Baseline: "raw-msgs/s",
				Note: "every chain and the stream's continuity, ten million events"},
			{Name: "audit.verify.heap", Bench: "BenchmarkAudit/verify", Metric: "heap-MB", Unit: "MB", Baseline: "heap-MB-tenth", BaseUnit: "MB(1/10th)",
				Note: "the verifier's live heap after all the events, against after a tenth of them: it grows with accounts, not events"},
		},
	},
}
