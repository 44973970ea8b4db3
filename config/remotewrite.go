package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
)

// GlobalConfig holds the Prometheus global keys vigil uses.
type GlobalConfig struct {
	// ExternalLabels are added to every series vigil sends by remote write,
	// so that many vigils' series stay apart in one backend.
	ExternalLabels map[string]string `yaml:"external_labels"`
}

// RemoteWriteConfig is one remote_write entry. It is Prometheus's own
// remote_write block with Prometheus's keys, defaults and checks: vigil hands
// the entry to Prometheus's config package to decode.
type RemoteWriteConfig struct {
	promconfig.RemoteWriteConfig
}

// yamlv2LineRE finds "line N: problem" in yaml.v2's errors.
var yamlv2LineRE = regexp.MustCompile(`line (\d+): (.*)`)

// yamlv2UnknownRE is yaml.v2's strict-mode "unknown key" error.
var yamlv2UnknownRE = regexp.MustCompile(`^field (\S+) not found in type`)

// decodeNode decodes one remote_write entry with Prometheus's decoder: the
// entry (with ${VAR} expanded) is written out again and read by yaml.v2, and
// the lines in yaml.v2's errors are mapped back to the config file's lines.
func (c *RemoteWriteConfig) decodeNode(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		d.valueErr(n.Line, path, "must be a mapping with at least url")
		return
	}
	if n.Kind != yaml.MappingNode {
		d.valueErr(n.Line, path, "must be a mapping, not %s", describe(n))
		return
	}
	tree := d.copyExpanded(n, path)
	d.recordPositions(tree, path)
	data, err := yaml.Marshal(tree)
	if err != nil {
		d.valueErr(n.Line, path, "%s", err.Error())
		return
	}
	err = yamlv2.UnmarshalStrict(data, &c.RemoteWriteConfig)
	if err == nil {
		return
	}
	var te *yamlv2.TypeError
	if errors.As(err, &te) {
		// Unknown keys and wrong types, one per line of the written-out entry.
		for _, msg := range te.Errors {
			line, keyPath, problem := n.Line, path, msg
			if m := yamlv2LineRE.FindStringSubmatch(msg); m != nil {
				l, _ := strconv.Atoi(m[1])
				line, keyPath = mapLine(data, tree, l, path)
				problem = m[2]
			}
			if m := yamlv2UnknownRE.FindStringSubmatch(problem); m != nil {
				problem = fmt.Sprintf("unknown key %q (see Prometheus's remote_write keys)", m[1])
			}
			d.valueErr(line, keyPath, "%s", problem)
		}
		return
	}
	// Prometheus's own checks (url missing, two auth methods, a bad header),
	// and url.Parse's errors, which quote the URL, password included.
	d.valueErr(n.Line, path, "%s", redactUserinfo(strings.TrimPrefix(err.Error(), "yaml: ")))
}

// userinfoRE finds the password of a URL's userinfo.
var userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s"]*):[^@/\s"]*@`)

// redactUserinfo replaces the password of every URL in s with xxxxx, as
// Prometheus's URL.Redacted does.
func redactUserinfo(s string) string {
	return userinfoRE.ReplaceAllString(s, "${1}:xxxxx@")
}

// copyExpanded copies a node tree with aliases resolved (their anchors may
// lie outside it) and ${VAR} expanded in every scalar.
func (d *decoder) copyExpanded(n *yaml.Node, path string) *yaml.Node {
	n = resolve(n)
	c := *n
	c.Anchor = ""
	if c.Kind == yaml.ScalarNode {
		c.Value = d.expand(c.Value, c.Line, path)
		return &c
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = d.copyExpanded(child, path)
	}
	return &c
}

// recordPositions notes the line of every key under n, so that later
// checks can name it.
func (d *decoder) recordPositions(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			kp := joinPath(path, n.Content[i].Value)
			d.positions[kp] = n.Content[i].Line
			d.recordPositions(n.Content[i+1], kp)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			ep := indexPath(path, i)
			d.positions[ep] = e.Line
			d.recordPositions(e, ep)
		}
	}
}

// mapLine finds the node that starts on line of data (tree written out) and
// returns the config file's line of the same node in tree, with its key path.
func mapLine(data []byte, tree *yaml.Node, line int, path string) (int, string) {
	var written yaml.Node
	if err := yaml.Unmarshal(data, &written); err != nil || len(written.Content) == 0 {
		return tree.Line, path
	}
	var find func(w, o *yaml.Node, p string) (int, string, bool)
	find = func(w, o *yaml.Node, p string) (int, string, bool) {
		if w.Line == line && w.Kind == yaml.ScalarNode {
			return o.Line, p, true
		}
		for i := 0; i < len(w.Content) && i < len(o.Content); i++ {
			cp := p
			switch w.Kind {
			case yaml.MappingNode:
				cp = joinPath(p, w.Content[i-i%2].Value)
			case yaml.SequenceNode:
				cp = indexPath(p, i)
			}
			if l, kp, ok := find(w.Content[i], o.Content[i], cp); ok {
				return l, kp, true
			}
		}
		return 0, "", false
	}
	if l, kp, ok := find(written.Content[0], tree, path); ok {
		return l, kp
	}
	return tree.Line, path
}

// validateRemoteWrite checks what Prometheus checks across the remote_write
// list and for global.external_labels.
func (c *Config) validateRemoteWrite(r *reporter) {
	for _, name := range sortedKeys(c.Global.ExternalLabels) {
		p := joinPath("global.external_labels", name)
		switch {
		case !model.LabelName(name).IsValidLegacy():
			r.keyErr(0, p, "%q is not a valid label name", name)
		case name == model.MetricNameLabel:
			r.keyErr(0, p, "%q is not allowed as an external label", name)
		case !model.LabelValue(c.Global.ExternalLabels[name]).IsValid():
			r.valueErr(0, p, "%q is not a valid label value", c.Global.ExternalLabels[name])
		}
	}
	names := map[string]int{}
	// Prometheus refuses two entries with the same config (it names a
	// queue by the hash of its entry's JSON); say so here, with the line.
	same := map[string]int{}
	for i := range c.RemoteWrite {
		rw := &c.RemoteWrite[i]
		p := indexPath("remote_write", i)
		if rw.URL == nil {
			// Reported when it was decoded.
			continue
		}
		if b, err := json.Marshal(rw.RemoteWriteConfig); err == nil {
			if first, dup := same[string(b)]; dup {
				r.valueErr(0, p, "is the same as remote_write[%d]; give one", first)
			}
			same[string(b)] = i
		}
		if rw.Name != "" {
			if first, dup := names[rw.Name]; dup {
				r.valueErr(0, joinPath(p, "name"), "%q is already the name of remote_write[%d]", rw.Name, first)
			}
			names[rw.Name] = i
		}
		c.checkRemoteWriteFiles(r, p, rw)
		if err := rw.Validate(model.UTF8Validation); err != nil {
			r.valueErr(0, joinPath(p, "write_relabel_configs"), "%s", err.Error())
		}
	}
}

// String names the endpoint by its host only (URLs may carry a token), for
// the summary.
func (c RemoteWriteConfig) String() string {
	if c.URL == nil {
		return "(no url)"
	}
	if c.Name != "" {
		return fmt.Sprintf("%s (%s)", c.Name, c.URL.Host)
	}
	return c.URL.Host
}

// checkRemoteWriteFiles reports secret and TLS files that cannot be read
// now, or are not regular files. Prometheus reads them at each send, so a rotated secret needs no
// reload; a missing one is better told at load, with its line.
func (c *Config) checkRemoteWriteFiles(r *reporter, path string, rw *RemoteWriteConfig) {
	hc := rw.HTTPClientConfig
	files := map[string]string{}
	if hc.BasicAuth != nil {
		files["basic_auth.password_file"] = hc.BasicAuth.PasswordFile
		files["basic_auth.username_file"] = hc.BasicAuth.UsernameFile
	}
	if hc.Authorization != nil {
		files["authorization.credentials_file"] = hc.Authorization.CredentialsFile
	}
	if hc.OAuth2 != nil {
		files["oauth2.client_secret_file"] = hc.OAuth2.ClientSecretFile
	}
	files["tls_config.ca_file"] = hc.TLSConfig.CAFile
	files["tls_config.cert_file"] = hc.TLSConfig.CertFile
	files["tls_config.key_file"] = hc.TLSConfig.KeyFile
	dir := filepath.Dir(c.File)
	for _, key := range sortedKeys(files) {
		f := files[key]
		if f == "" {
			continue
		}
		f = resolvePath(dir, f)
		fi, err := os.Stat(f)
		switch {
		case err != nil:
			r.valueErr(0, joinPath(path, key), "cannot read the file: %v", err)
		case !fi.Mode().IsRegular():
			// Prometheus reads the file whole at each send: /dev/zero
			// would fill memory, a pipe hang the queue.
			r.valueErr(0, joinPath(path, key), "%s is %v (it is %s)", f, ErrNotRegular, fileKind(fi.Mode()))
		}
	}
}
