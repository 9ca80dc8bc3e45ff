// Package provider holds one adapter file per provider: each registers, at
// init, how to build a source.Source of a connection of its provider (from
// its client package) and how to check the connection's settings. The
// poller's app imports it for that; the engine never does.
package provider
