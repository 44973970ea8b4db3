package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FirewallConfig is the seed's firewall block. vigil does not apply it (the
// host firewall or the cloud does); it validates the rules, checks them
// against vigil's own port and exports them (vigil_firewall_rule_info).
type FirewallConfig struct {
	Inbound  []FirewallRule `yaml:"inbound"`
	Outbound []FirewallRule `yaml:"outbound"`
}

// FirewallRule is one rule of firewall.inbound/outbound or of a security
// group's ingress/egress. Inbound rules take a source, outbound rules a
// destination, both as CIDR.
type FirewallRule struct {
	Port        PortRange `yaml:"port"`
	Protocol    string    `yaml:"protocol"`
	Source      string    `yaml:"source"`
	Destination string    `yaml:"destination"`
	Description string    `yaml:"description"`
}

// PortRange is a port (80) or an inclusive range of ports (0-65535).
type PortRange struct {
	From, To int
}

// UnmarshalYAML parses 80 or 0-65535.
func (p *PortRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a port such as 443 or a range such as 0-65535, not %s", describe(n))
	}
	v, err := ParsePortRange(n.Value)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePortRange parses a port (1-65535) or a range lo-hi of ports
// (0-65535, lo not above hi).
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	lo, hi, isRange := strings.Cut(s, "-")
	a, errA := strconv.Atoi(strings.TrimSpace(lo))
	if !isRange {
		if errA != nil || a < 1 || a > 65535 {
			return PortRange{}, fmt.Errorf("%q is not a port (1-65535) or a range of ports such as 0-65535", s)
		}
		return PortRange{a, a}, nil
	}
	b, errB := strconv.Atoi(strings.TrimSpace(hi))
	if errA != nil || errB != nil || a < 0 || b > 65535 || a > b {
		return PortRange{}, fmt.Errorf("%q is not a range of ports (lo-hi within 0-65535, such as 0-65535)", s)
	}
	return PortRange{a, b}, nil
}

// String writes the port or range as the config does.
func (p PortRange) String() string {
	if p.From == p.To {
		return strconv.Itoa(p.From)
	}
	return fmt.Sprintf("%d-%d", p.From, p.To)
}

// Contains reports whether port is in the range.
func (p PortRange) Contains(port int) bool { return p.From <= port && port <= p.To }

// opensTCP reports whether the rule lets TCP through on port. The protocol
// is compared as validation accepts it: without case or surrounding space.
func (r FirewallRule) opensTCP(port int) bool {
	proto := strings.ToLower(strings.TrimSpace(r.Protocol))
	return r.Port.Contains(port) && (proto == "tcp" || proto == "all")
}

// firewallProtocols are the accepted protocols of firewall and security
// group rules, compared without case ("all" is the seed's every protocol).
var firewallProtocols = []string{"tcp", "udp", "icmp", "all"}

// NetworkConfig is the seed's network block: Kubernetes NetworkPolicies
// written inline. vigil does not apply them to the cluster; it validates
// them, checks their ports against the app's and the database's, and exports
// them (vigil_network_policy_port_info).
type NetworkConfig struct {
	Policies []NetworkPolicyConfig `yaml:"policies"`
}

// NetworkPolicyConfig is one policy, in Kubernetes' NetworkPolicy spec
// shape (name and namespace beside it).
type NetworkPolicyConfig struct {
	Name        string                 `yaml:"name"`
	Namespace   string                 `yaml:"namespace"`
	PodSelector LabelSelector          `yaml:"podSelector"`
	PolicyTypes []string               `yaml:"policyTypes"`
	Ingress     []NetworkPolicyIngress `yaml:"ingress"`
	Egress      []NetworkPolicyEgress  `yaml:"egress"`
}

// NetworkPolicyIngress is one ingress rule: who may connect, on which ports.
type NetworkPolicyIngress struct {
	From  []NetworkPolicyPeer `yaml:"from"`
	Ports []NetworkPolicyPort `yaml:"ports"`
}

// NetworkPolicyEgress is one egress rule: where pods may connect, on which ports.
type NetworkPolicyEgress struct {
	To    []NetworkPolicyPeer `yaml:"to"`
	Ports []NetworkPolicyPort `yaml:"ports"`
}

// NetworkPolicyPeer selects pods, namespaces or an IP block.
type NetworkPolicyPeer struct {
	PodSelector       *LabelSelector `yaml:"podSelector"`
	NamespaceSelector *LabelSelector `yaml:"namespaceSelector"`
	IPBlock           *IPBlock       `yaml:"ipBlock"`
}

// IPBlock is a CIDR with exceptions inside it.
type IPBlock struct {
	CIDR   string   `yaml:"cidr"`
	Except []string `yaml:"except"`
}

// NetworkPolicyPort is a protocol (TCP, UDP, SCTP; default TCP) and a port,
// optionally up to endPort.
type NetworkPolicyPort struct {
	Protocol string `yaml:"protocol"`
	Port     int    `yaml:"port"`
	EndPort  int    `yaml:"endPort"`
}

// LabelSelector is Kubernetes' label selector.
type LabelSelector struct {
	MatchLabels      map[string]string          `yaml:"matchLabels"`
	MatchExpressions []LabelSelectorRequirement `yaml:"matchExpressions"`
}

// LabelSelectorRequirement is one matchExpressions entry.
type LabelSelectorRequirement struct {
	Key      string   `yaml:"key"`
	Operator string   `yaml:"operator"`
	Values   []string `yaml:"values"`
}

// SecurityGroupConfig is one entry of security.groups: a cloud security
// group, recorded and checked like the firewall block.
type SecurityGroupConfig struct {
	Name        string         `yaml:"name"`
	Description string         `yaml:"description"`
	Ingress     []FirewallRule `yaml:"ingress"`
	Egress      []FirewallRule `yaml:"egress"`
}

// AtRestConfig is encryption.at_rest. vigil cannot encrypt or see the keys;
// it checks whether its own data_dir lies on an encrypted (dm-crypt) device
// and records the rest.
type AtRestConfig struct {
	Algorithm   string   `yaml:"algorithm"`
	KeyRotation Duration `yaml:"key_rotation"`
	KeyStorage  string   `yaml:"key_storage"`
}

var (
	// atRestAlgorithmRE accepts AES with its key size and an optional mode.
	atRestAlgorithmRE = regexp.MustCompile(`(?i)^AES-?(128|192|256)(-(GCM|XTS|CBC|CTR))?$`)
	// k8s name and label syntax (apimachinery's validation).
	dns1123LabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123SubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelPartRE        = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

func (c *Config) validateSecurityBlocks(r *reporter) {
	if f := c.Firewall; f != nil {
		validateFirewallRules(r, "firewall.inbound", f.Inbound, true)
		validateFirewallRules(r, "firewall.outbound", f.Outbound, false)
	}
	if n := c.Network; n != nil {
		for i := range n.Policies {
			validateNetworkPolicy(r, indexPath("network.policies", i), &n.Policies[i])
		}
	}
	seen := map[string]int{}
	for i := range c.Security.Groups {
		g := &c.Security.Groups[i]
		p := indexPath("security.groups", i)
		if strings.TrimSpace(g.Name) == "" {
			r.valueErr(0, p, "name is required")
		} else {
			r.unique(seen, p, g.Name)
		}
		validateFirewallRules(r, joinPath(p, "ingress"), g.Ingress, true)
		validateFirewallRules(r, joinPath(p, "egress"), g.Egress, false)
	}
	if e := c.Encryption; e != nil && e.AtRest != nil {
		a := e.AtRest
		if a.Algorithm != "" && !atRestAlgorithmRE.MatchString(strings.TrimSpace(a.Algorithm)) {
			r.valueErr(0, "encryption.at_rest.algorithm", "%q is not an algorithm vigil knows (AES-128, AES-192 or AES-256, optionally with -GCM, -XTS, -CBC or -CTR)", a.Algorithm)
		}
		if a.KeyRotation < 0 {
			r.valueErr(0, "encryption.at_rest.key_rotation", "must not be negative")
		}
	}
}

func validateFirewallRules(r *reporter, path string, rules []FirewallRule, inbound bool) {
	peer, other := "source", "destination"
	if !inbound {
		peer, other = other, peer
	}
	for i, rule := range rules {
		p := indexPath(path, i)
		if _, given := r.positions[joinPath(p, "port")]; !given {
			r.valueErr(0, p, "port is required (a port such as 443, or a range such as 0-65535)")
		}
		if !slices.Contains(firewallProtocols, strings.ToLower(strings.TrimSpace(rule.Protocol))) {
			if rule.Protocol == "" {
				r.valueErr(0, p, "protocol is required (one of %s)", strings.Join(firewallProtocols, ", "))
			} else {
				r.valueErr(0, joinPath(p, "protocol"), "%q is not one of %s", rule.Protocol, strings.Join(firewallProtocols, ", "))
			}
		}
		cidr, stray := rule.Source, rule.Destination
		if !inbound {
			cidr, stray = stray, cidr
		}
		if stray != "" {
			r.keyErr(0, joinPath(p, other), "%s rules take %s, not %s", map[bool]string{true: "inbound", false: "outbound"}[inbound], peer, other)
		}
		if cidr == "" {
			r.valueErr(0, p, "%s is required (a CIDR such as 10.0.0.0/8)", peer)
		} else {
			checkCIDR(r, joinPath(p, peer), cidr)
		}
	}
}

func checkCIDR(r *reporter, path, s string) {
	if _, err := netip.ParsePrefix(strings.TrimSpace(s)); err != nil {
		r.valueErr(0, path, "%q is not a CIDR (an address and a prefix length, such as 10.0.0.0/8)", s)
	}
}

func validateNetworkPolicy(r *reporter, p string, np *NetworkPolicyConfig) {
	switch {
	case np.Name == "":
		r.valueErr(0, p, "name is required")
	case len(np.Name) > 253 || !dns1123SubdomainRE.MatchString(np.Name):
		r.valueErr(0, joinPath(p, "name"), "%q is not a Kubernetes object name (lower case letters, digits, '-' and '.')", np.Name)
	}
	if np.Namespace != "" && (len(np.Namespace) > 63 || !dns1123LabelRE.MatchString(np.Namespace)) {
		r.valueErr(0, joinPath(p, "namespace"), "%q is not a Kubernetes namespace name (lower case letters, digits and '-')", np.Namespace)
	}
	checkLabelSelector(r, joinPath(p, "podSelector"), &np.PodSelector)
	for i, t := range np.PolicyTypes {
		if t != "Ingress" && t != "Egress" {
			r.valueErr(0, indexPath(joinPath(p, "policyTypes"), i), "%q is not one of Ingress, Egress", t)
		}
	}
	for i, in := range np.Ingress {
		ip := indexPath(joinPath(p, "ingress"), i)
		checkPeers(r, joinPath(ip, "from"), in.From)
		checkPolicyPorts(r, joinPath(ip, "ports"), in.Ports)
	}
	for i, eg := range np.Egress {
		ep := indexPath(joinPath(p, "egress"), i)
		checkPeers(r, joinPath(ep, "to"), eg.To)
		checkPolicyPorts(r, joinPath(ep, "ports"), eg.Ports)
	}
}

func checkPeers(r *reporter, path string, peers []NetworkPolicyPeer) {
	for i, peer := range peers {
		p := indexPath(path, i)
		if peer.PodSelector == nil && peer.NamespaceSelector == nil && peer.IPBlock == nil {
			r.valueErr(0, p, "needs podSelector, namespaceSelector or ipBlock")
		}
		if peer.IPBlock != nil && (peer.PodSelector != nil || peer.NamespaceSelector != nil) {
			r.valueErr(0, p, "ipBlock cannot be combined with podSelector or namespaceSelector")
		}
		if peer.PodSelector != nil {
			checkLabelSelector(r, joinPath(p, "podSelector"), peer.PodSelector)
		}
		if peer.NamespaceSelector != nil {
			checkLabelSelector(r, joinPath(p, "namespaceSelector"), peer.NamespaceSelector)
		}
		if b := peer.IPBlock; b != nil {
			bp := joinPath(p, "ipBlock")
			if b.CIDR == "" {
				r.valueErr(0, bp, "cidr is required")
			} else {
				checkCIDR(r, joinPath(bp, "cidr"), b.CIDR)
			}
			for j, ex := range b.Except {
				checkCIDR(r, indexPath(joinPath(bp, "except"), j), ex)
			}
		}
	}
}

func checkPolicyPorts(r *reporter, path string, ports []NetworkPolicyPort) {
	for i, pp := range ports {
		p := indexPath(path, i)
		if pp.Protocol != "" && !slices.Contains([]string{"TCP", "UDP", "SCTP"}, strings.ToUpper(pp.Protocol)) {
			r.valueErr(0, joinPath(p, "protocol"), "%q is not one of TCP, UDP, SCTP", pp.Protocol)
		}
		if pp.Port < 1 || pp.Port > 65535 {
			if _, given := r.positions[joinPath(p, "port")]; given {
				r.valueErr(0, joinPath(p, "port"), "%d is not a port (1-65535)", pp.Port)
			} else if pp.EndPort != 0 {
				r.valueErr(0, p, "endPort needs port")
			}
		}
		if pp.EndPort != 0 && (pp.EndPort < pp.Port || pp.EndPort > 65535) {
			r.valueErr(0, joinPath(p, "endPort"), "%d must be a port at or above port %d", pp.EndPort, pp.Port)
		}
	}
}

func checkLabelSelector(r *reporter, path string, s *LabelSelector) {
	for _, k := range sortedKeys(s.MatchLabels) {
		kp := joinPath(joinPath(path, "matchLabels"), k)
		if !validLabelKey(k) {
			r.keyErr(0, kp, "%q is not a Kubernetes label key", k)
		}
		if v := s.MatchLabels[k]; v != "" && (len(v) > 63 || !labelPartRE.MatchString(v)) {
			r.valueErr(0, kp, "%q is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)", v)
		}
	}
	for i, e := range s.MatchExpressions {
		ep := indexPath(joinPath(path, "matchExpressions"), i)
		if !validLabelKey(e.Key) {
			r.valueErr(0, ep, "key %q is not a Kubernetes label key", e.Key)
		}
		switch e.Operator {
		case "In", "NotIn":
			if len(e.Values) == 0 {
				r.valueErr(0, ep, "operator %s needs values", e.Operator)
			}
		case "Exists", "DoesNotExist":
			if len(e.Values) > 0 {
				r.valueErr(0, ep, "operator %s takes no values", e.Operator)
			}
		default:
			r.valueErr(0, ep, "operator %q is not one of In, NotIn, Exists, DoesNotExist", e.Operator)
		}
	}
}

// validLabelKey is Kubernetes' qualified name: an optional DNS subdomain
// prefix and '/', then a name of at most 63 characters.
func validLabelKey(k string) bool {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = prefix
	} else if prefix == "" || len(prefix) > 253 || !dns1123SubdomainRE.MatchString(prefix) {
		return false
	}
	return name != "" && len(name) <= 63 && labelPartRE.MatchString(name)
}

// securityWarnings are the checks vigil can make of the seed's network and
// encryption blocks against its own config, and the one statement of what
// it records without enforcing. They are warnings: the rules may be right
// for a host or pod vigil does not run on.
func (c *Config) securityWarnings() []string {
	var out []string
	listenPort := portOf(c.ListenAddress())
	if c.ListensOnLoopback() {
		// Nobody off the host can reach vigil whatever the rules say.
		listenPort = 0
	}
	openTo := func(rules []FirewallRule, port int) bool {
		for _, r := range rules {
			if r.opensTCP(port) {
				return true
			}
		}
		return false
	}
	sshOpen := func(where string, rules []FirewallRule) {
		for i, r := range rules {
			if !r.opensTCP(22) {
				continue
			}
			if pfx, err := netip.ParsePrefix(strings.TrimSpace(r.Source)); err == nil && pfx.Bits() == 0 {
				out = append(out, fmt.Sprintf("%s[%d] (line %d): SSH (port 22) is open to %s, the whole internet; limit it to your own network",
					where, i, c.Line(indexPath(where, i)), r.Source))
			}
		}
	}
	if f := c.Firewall; f != nil {
		if listenPort > 0 && len(f.Inbound) > 0 && !openTo(f.Inbound, listenPort) {
			out = append(out, fmt.Sprintf("firewall.inbound (line %d): no rule opens vigil's port %d (%s): Grafana and users off this host cannot reach vigil",
				c.Line("firewall.inbound"), listenPort, c.ListenAddress()))
		}
		sshOpen("firewall.inbound", f.Inbound)
	}
	if gs := c.Security.Groups; len(gs) > 0 {
		var all []FirewallRule
		for i, g := range gs {
			all = append(all, g.Ingress...)
			sshOpen(joinPath(indexPath("security.groups", i), "ingress"), g.Ingress)
		}
		if listenPort > 0 && !openTo(all, listenPort) {
			out = append(out, fmt.Sprintf("security.groups (line %d): no group's ingress opens vigil's port %d (%s): Grafana and users outside the cloud network cannot reach vigil",
				c.Line("security.groups"), listenPort, c.ListenAddress()))
		}
	}
	if n := c.Network; n != nil {
		out = append(out, c.networkPolicyWarnings(n)...)
	}
	if rec := c.recordedNotEnforced(); len(rec) > 0 {
		out = append(out, "recorded, not enforced: "+strings.Join(rec, "; "))
	}
	return out
}

// networkPolicyWarnings compares the policy for the database (its name or
// app label says database or postgres) with collectors.database's DSN port,
// and the policy for the app (its app label is collectors.app's) with the
// app's target ports. Loopback targets are skipped: traffic inside a pod is
// not subject to network policies.
func (c *Config) networkPolicyWarnings(n *NetworkConfig) []string {
	var out []string
	ranges := func(np *NetworkPolicyConfig) []PortRange {
		var rs []PortRange
		for _, in := range np.Ingress {
			for _, p := range in.Ports {
				if p.Port == 0 {
					// No port: every port of the protocol, as Kubernetes reads it.
					rs = append(rs, PortRange{0, 65535})
					continue
				}
				rs = append(rs, PortRange{p.Port, max(p.Port, p.EndPort)})
			}
		}
		return rs
	}
	allows := func(np *NetworkPolicyConfig, port int) bool {
		rs := ranges(np)
		// No ingress ports listed means every port.
		return len(rs) == 0 || slices.ContainsFunc(rs, func(r PortRange) bool { return r.Contains(port) })
	}
	ports := func(np *NetworkPolicyConfig) string {
		var ss []string
		for _, r := range ranges(np) {
			ss = append(ss, r.String())
		}
		return strings.Join(ss, ", ")
	}
	var appLabel string
	if a := c.Collectors.App; a != nil {
		appLabel = a.Labels["app"]
	}
	for i := range n.Policies {
		np := &n.Policies[i]
		p := indexPath("network.policies", i)
		sel := strings.ToLower(np.PodSelector.MatchLabels["app"])
		name := strings.ToLower(np.Name)
		isDB := strings.Contains(name, "database") || strings.Contains(name, "postgres") || strings.Contains(sel, "database") || strings.Contains(sel, "postgres")
		if db := c.Collectors.Database; isDB && db != nil {
			if host, port := dsnHostPort(string(db.DSN)); port > 0 && !isLoopback(host) && !allows(np, port) {
				out = append(out, fmt.Sprintf("%s %q (line %d): its ingress ports (%s) do not include %d, the port of collectors.database's dsn: vigil could not reach the database",
					p, np.Name, c.Line(p), ports(np), port))
			}
		}
		if a := c.Collectors.App; !isDB && a != nil && appLabel != "" && sel == strings.ToLower(appLabel) {
			for _, t := range a.Targets {
				host, portStr, err := net.SplitHostPort(t)
				port, _ := strconv.Atoi(portStr)
				if err == nil && port > 0 && !isLoopback(host) && !allows(np, port) {
					out = append(out, fmt.Sprintf("%s %q (line %d): its ingress ports (%s) do not include %d, the port of the app target %s: vigil could not scrape the app",
						p, np.Name, c.Line(p), ports(np), port, t))
				}
			}
		}
	}
	return out
}

// recordedNotEnforced names what of the seed's security blocks vigil keeps
// (and exports) but cannot enforce or verify.
func (c *Config) recordedNotEnforced() []string {
	var out []string
	if c.Firewall != nil {
		out = append(out, "firewall (vigil does not apply firewall rules; it checks its own port against them and exports them as vigil_firewall_rule_info)")
	}
	if c.Network != nil && len(c.Network.Policies) > 0 {
		out = append(out, "network.policies (vigil does not apply them to the cluster; it checks the app's and the database's ports against them)")
	}
	if len(c.Security.Groups) > 0 {
		out = append(out, "security.groups (vigil does not create or read cloud security groups; it checks its own port against them)")
	}
	if e := c.Encryption; e != nil {
		if a := e.AtRest; a != nil {
			var keys []string
			if a.Algorithm != "" {
				keys = append(keys, "algorithm "+a.Algorithm)
			}
			if a.KeyRotation > 0 {
				keys = append(keys, "key_rotation "+a.KeyRotation.String())
			}
			if a.KeyStorage != "" {
				keys = append(keys, "key_storage "+a.KeyStorage)
			}
			if len(keys) > 0 {
				out = append(out, "encryption.at_rest "+strings.Join(keys, ", ")+
					" (vigil cannot see the keys or their rotation; it checks only that data_dir lies on an encrypted device: vigil_data_dir_encrypted)")
			}
		}
		if it := e.InTransit; it != nil && it.CertificateStorage != "" {
			out = append(out, "encryption.in_transit.certificate_storage "+it.CertificateStorage+
				" (vigil does not read certificates from a store; it watches the certificates it serves and probes by their dates)")
		}
	}
	return out
}

// dataDirRules is vigil's own rule that encryption.at_rest asks for.
func (c *Config) dataDirRules() []RuleConfig {
	if c.Encryption == nil || c.Encryption.AtRest == nil {
		return nil
	}
	return []RuleConfig{{
		Name:        "data_dir_not_encrypted",
		Condition:   "vigil_data_dir_encrypted == 0",
		Duration:    Duration(5 * time.Minute),
		Severity:    "warning",
		Labels:      map[string]string{"app": "vigil"},
		Summary:     "vigil's data_dir is not on an encrypted device",
		Description: "encryption.at_rest is configured, and vigil's data_dir ({{ $labels.data_dir }}) lies on a device that is not dm-crypt encrypted.",
	}}
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// dsnHostPort returns the host and port of a PostgreSQL DSN, as a URL
// (postgres://h:5432/db) or as key=value pairs; the port defaults to 5432.
func dsnHostPort(dsn string) (string, int) {
	dsn = strings.TrimSpace(dsn)
	if dsn == "" {
		return "", 0
	}
	host, port := "", 5432
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", 0
		}
		host = u.Hostname()
		if p, err := strconv.Atoi(u.Port()); err == nil {
			port = p
		}
		return host, port
	}
	for _, kv := range strings.Fields(dsn) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "host":
			host = v
		case "port":
			if p, err := strconv.Atoi(v); err == nil {
				port = p
			}
		}
	}
	return host, port
}
