package egress

import "net/netip"

// block is one entry of an IANA special-purpose address registry: its
// name there, and whether the registry calls it "Globally Reachable".
type block struct {
	prefix netip.Prefix
	name   string
	global bool
}

func b(prefix, name string, global bool) block {
	return block{netip.MustParsePrefix(prefix), name, global}
}

// special4 is the IANA IPv4 Special-Purpose Address Registry (RFC 6890 and
// its updates), plus the multicast block (its own registry). An address takes
// the most specific block that holds it: 192.0.0.9 is the globally reachable
// PCP anycast address inside the non-global 192.0.0.0/24.
var special4 = []block{
	b("0.0.0.0/8", `"This network"`, false),
	b("0.0.0.0/32", `"This host on this network"`, false),
	b("10.0.0.0/8", "Private-Use", false),
	b("100.64.0.0/10", "Shared Address Space (carrier-grade NAT; Alibaba Cloud metadata 100.100.100.200 is here)", false),
	b("127.0.0.0/8", "Loopback", false),
	b("169.254.0.0/16", "Link Local (cloud metadata 169.254.169.254 is here)", false),
	b("172.16.0.0/12", "Private-Use", false),
	b("192.0.0.0/24", "IETF Protocol Assignments", false),
	b("192.0.0.0/29", "IPv4 Service Continuity Prefix", false),
	b("192.0.0.8/32", "IPv4 dummy address", false),
	b("192.0.0.9/32", "Port Control Protocol Anycast", true),
	b("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", true),
	b("192.0.0.170/32", "NAT64/DNS64 Discovery", false),
	b("192.0.0.171/32", "NAT64/DNS64 Discovery", false),
	b("192.0.2.0/24", "Documentation (TEST-NET-1)", false),
	b("192.31.196.0/24", "AS112-v4", true),
	b("192.52.193.0/24", "AMT", true),
	b("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", false),
	b("192.88.99.2/32", "6a44-relay anycast address", false),
	b("192.168.0.0/16", "Private-Use", false),
	b("192.175.48.0/24", "Direct Delegation AS112 Service", true),
	b("198.18.0.0/15", "Benchmarking", false),
	b("198.51.100.0/24", "Documentation (TEST-NET-2)", false),
	b("203.0.113.0/24", "Documentation (TEST-NET-3)", false),
	b("224.0.0.0/4", "Multicast", false),
	b("240.0.0.0/4", "Reserved", false),
	b("255.255.255.255/32", "Limited Broadcast", false),
}

// special6 is the IANA IPv6 Special-Purpose Address Registry, plus the
// blocks of the IPv6 Address Space registry a webhook must not reach:
// multicast, the deprecated site-local and IPv4-compatible forms. Whatever
// lies outside 2000::/3 (global unicast) and is named by no entry is
// refused too (see classify6).
var special6 = []block{
	b("::1/128", "Loopback Address", false),
	b("::/128", "Unspecified Address", false),
	b("::/96", "IPv4-compatible Address (deprecated, RFC 4291)", false),
	b("::ffff:0:0/96", "IPv4-mapped Address", false),
	b("::ffff:0:0:0/96", "IPv4-translated Address (RFC 2765)", false),
	b("64:ff9b::/96", "IPv4-IPv6 Translat. (NAT64 well-known prefix)", true),
	b("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local-use NAT64)", false),
	b("100::/64", "Discard-Only Address Block", false),
	b("100:0:0:1::/64", "Dummy IPv6 Prefix", false),
	b("2001::/23", "IETF Protocol Assignments", false),
	b("2001::/32", "TEREDO", false),
	b("2001:1::1/128", "Port Control Protocol Anycast", true),
	b("2001:1::2/128", "Traversal Using Relays around NAT Anycast", true),
	b("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", true),
	b("2001:2::/48", "Benchmarking", false),
	b("2001:3::/32", "AMT", true),
	b("2001:4:112::/48", "AS112-v6", true),
	b("2001:10::/28", "Deprecated (previously ORCHID)", false),
	b("2001:20::/28", "ORCHIDv2", true),
	b("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", true),
	b("2001:db8::/32", "Documentation", false),
	b("2002::/16", "6to4", false),
	b("2620:4f:8000::/48", "Direct Delegation AS112 Service", true),
	b("3fff::/20", "Documentation", false),
	b("5f00::/16", "Segment Routing (SRv6) SIDs", false),
	b("fc00::/7", "Unique-Local (AWS IPv6 metadata fd00:ec2::254 is here)", false),
	b("fe80::/10", "Link-Local Unicast", false),
	b("fec0::/10", "Site-Local (deprecated, RFC 3879)", false),
	b("ff00::/8", "Multicast", false),
}

// globalUnicast6 is where IANA allocates global IPv6 unicast addresses.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// lookup returns the most specific block of table that holds ip.
func lookup(table []block, ip netip.Addr) (block, bool) {
	var best block
	found := false
	for _, e := range table {
		if e.prefix.Contains(ip) && (!found || e.prefix.Bits() > best.prefix.Bits()) {
			best, found = e, true
		}
	}
	return best, found
}
