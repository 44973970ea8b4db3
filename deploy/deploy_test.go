// Package deploy holds vigil's Kubernetes manifests and docker-compose stack;
// its test checks that they reference only files, ports, volumes, ConfigMaps
// and Secrets that exist, and that the vigil configurations they carry load
// with vigil's own config loader and rules checker.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/rules"
)

const (
	kubeDir    = "kubernetes"
	composeDir = "compose"
	// vigilImage is the image name of the vigil container in every manifest.
	vigilImage = "vigil"
	// placeholderPrefix starts every value of a committed Secret.
	placeholderPrefix = "REPLACE_ME"
)

// Minimal Kubernetes types: only the fields the checks read. Decoding is
// not strict (a manifest has many fields these types do not name); the
// checks require the fields they need to be present.

type object struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   metadata          `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
	Resources  []string          `yaml:"resources"`

	file string
	doc  int
}

func (o *object) String() string {
	return fmt.Sprintf("%s #%d %s/%s", o.file, o.doc, o.Kind, o.Metadata.Name)
}

type metadata struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

// portRef is a port by number or by name, as probes, Services and
// NetworkPolicies write it.
type portRef struct {
	num  int
	name string
}

func (p *portRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a port must be a number or a name", n.Line)
	}
	if n.Tag == "!!int" {
		v, err := strconv.Atoi(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: port %q: %w", n.Line, n.Value, err)
		}
		p.num = v
		return nil
	}
	p.name = n.Value
	return nil
}

func (p portRef) zero() bool { return p.num == 0 && p.name == "" }

func (p portRef) String() string {
	if p.name != "" {
		return strconv.Quote(p.name)
	}
	return strconv.Itoa(p.num)
}

type deploymentSpec struct {
	Replicas *int          `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata metadata `yaml:"metadata"`
		Spec     podSpec  `yaml:"spec"`
	} `yaml:"template"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podSpec struct {
	Containers     []container `yaml:"containers"`
	InitContainers []container `yaml:"initContainers"`
	Volumes        []volume    `yaml:"volumes"`
}

type container struct {
	Name            string           `yaml:"name"`
	Image           string           `yaml:"image"`
	Args            []string         `yaml:"args"`
	Ports           []containerPort  `yaml:"ports"`
	Env             []envVar         `yaml:"env"`
	EnvFrom         []envFrom        `yaml:"envFrom"`
	LivenessProbe   *probe           `yaml:"livenessProbe"`
	ReadinessProbe  *probe           `yaml:"readinessProbe"`
	StartupProbe    *probe           `yaml:"startupProbe"`
	Resources       resources        `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
	VolumeMounts    []volumeMount    `yaml:"volumeMounts"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type probe struct {
	HTTPGet *struct {
		Path string  `yaml:"path"`
		Port portRef `yaml:"port"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port portRef `yaml:"port"`
	} `yaml:"tcpSocket"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
	} `yaml:"valueFrom"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional bool   `yaml:"optional"`
}

type envFrom struct {
	SecretRef    *nameRef `yaml:"secretRef"`
	ConfigMapRef *nameRef `yaml:"configMapRef"`
}

type nameRef struct {
	Name     string `yaml:"name"`
	Optional bool   `yaml:"optional"`
}

type resources struct {
	Requests map[string]string `yaml:"requests"`
	Limits   map[string]string `yaml:"limits"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name  string      `yaml:"name"`
		Items []keyToPath `yaml:"items"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string      `yaml:"secretName"`
		Items      []keyToPath `yaml:"items"`
	} `yaml:"secret"`
	EmptyDir              *struct{} `yaml:"emptyDir"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string  `yaml:"name"`
		Port       int     `yaml:"port"`
		TargetPort portRef `yaml:"targetPort"`
	} `yaml:"ports"`
}

type networkPolicySpec struct {
	PodSelector labelSelector `yaml:"podSelector"`
	PolicyTypes []string      `yaml:"policyTypes"`
	Ingress     []struct {
		From  []yaml.Node `yaml:"from"`
		Ports []struct {
			Protocol string  `yaml:"protocol"`
			Port     portRef `yaml:"port"`
		} `yaml:"ports"`
	} `yaml:"ingress"`
}

type pvcSpec struct {
	AccessModes []string  `yaml:"accessModes"`
	Resources   resources `yaml:"resources"`
}

// apiVersions is the apiVersion each kind the manifests use must have.
var apiVersions = map[string]string{
	"ConfigMap":             "v1",
	"Secret":                "v1",
	"Service":               "v1",
	"PersistentVolumeClaim": "v1",
	"Deployment":            "apps/v1",
	"NetworkPolicy":         "networking.k8s.io/v1",
	"Kustomization":         "kustomize.config.k8s.io/v1beta1",
}

// readObjects decodes every YAML document of a manifest file.
func readObjects(t *testing.T, file string) []*object {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*object
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "%s: document %d", file, i)
		if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null" {
			continue
		}
		o := &object{file: filepath.Base(file), doc: i}
		require.NoError(t, n.Decode(o), "%s: document %d", file, i)
		out = append(out, o)
	}
	require.NotEmpty(t, out, "%s holds no document", file)
	return out
}

// decodeSpec decodes o's spec into v, which must be present.
func decodeSpec(t *testing.T, o *object, v any) {
	t.Helper()
	require.Equal(t, yaml.MappingNode, o.Spec.Kind, "%s: spec is missing", o)
	require.NoError(t, o.Spec.Decode(v), "%s: spec", o)
}

// bundle is a set of manifests applied together: every reference must be
// satisfied inside it.
type bundle struct {
	objects     []*object
	deployments map[string]*deploymentSpec
	services    map[string]*serviceSpec
	policies    map[string]*networkPolicySpec
	configMaps  map[string]*object
	secrets     map[string]*object
	claims      map[string]bool
}

func newBundle(t *testing.T, files []string) *bundle {
	t.Helper()
	b := &bundle{
		deployments: map[string]*deploymentSpec{},
		services:    map[string]*serviceSpec{},
		policies:    map[string]*networkPolicySpec{},
		configMaps:  map[string]*object{},
		secrets:     map[string]*object{},
		claims:      map[string]bool{},
	}
	seen := map[string]string{}
	for _, f := range files {
		for _, o := range readObjects(t, filepath.Join(kubeDir, f)) {
			want, ok := apiVersions[o.Kind]
			require.True(t, ok && o.Kind != "Kustomization", "%s: unexpected kind %q", o, o.Kind)
			require.Equal(t, want, o.APIVersion, "%s: apiVersion", o)
			require.NotEmpty(t, o.Metadata.Name, "%s: metadata.name is missing", o)
			key := o.Kind + "/" + o.Metadata.Name
			require.NotContains(t, seen, key, "%s: also defined in %s", o, seen[key])
			seen[key] = o.String()
			b.objects = append(b.objects, o)
			b.add(t, o)
		}
	}
	return b
}

func (b *bundle) add(t *testing.T, o *object) {
	t.Helper()
	name := o.Metadata.Name
	switch o.Kind {
	case "Deployment":
		var d deploymentSpec
		decodeSpec(t, o, &d)
		require.NotNil(t, d.Replicas, "%s: spec.replicas is missing", o)
		require.NotEmpty(t, d.Selector.MatchLabels, "%s: spec.selector.matchLabels is missing", o)
		require.True(t, selects(d.Selector.MatchLabels, d.Template.Metadata.Labels),
			"%s: the selector %v does not match the template's labels %v", o, d.Selector.MatchLabels, d.Template.Metadata.Labels)
		require.NotEmpty(t, d.Template.Spec.Containers, "%s: no containers", o)
		for _, c := range d.Template.Spec.Containers {
			require.NotEmpty(t, c.Name, "%s: a container has no name", o)
			require.NotEmpty(t, c.Image, "%s: container %s has no image", o, c.Name)
		}
		b.deployments[name] = &d
	case "Service":
		var s serviceSpec
		decodeSpec(t, o, &s)
		require.NotEmpty(t, s.Selector, "%s: spec.selector is missing", o)
		require.NotEmpty(t, s.Ports, "%s: spec.ports is missing", o)
		for _, p := range s.Ports {
			require.NotZero(t, p.Port, "%s: port %q has no number", o, p.Name)
		}
		b.services[name] = &s
	case "NetworkPolicy":
		var p networkPolicySpec
		decodeSpec(t, o, &p)
		require.NotEmpty(t, p.PolicyTypes, "%s: spec.policyTypes is missing", o)
		b.policies[name] = &p
	case "ConfigMap":
		require.NotEmpty(t, o.Data, "%s: no data", o)
		b.configMaps[name] = o
	case "Secret":
		require.NotEmpty(t, len(o.Data)+len(o.StringData), "%s: no data", o)
		// A Secret in the repository holds placeholders only.
		require.Empty(t, o.Data, "%s: use stringData with %s placeholders, not data", o, placeholderPrefix)
		for k, v := range o.StringData {
			require.True(t, strings.HasPrefix(v, placeholderPrefix), "%s: %s is not a %s placeholder", o, k, placeholderPrefix)
		}
		b.secrets[name] = o
	case "PersistentVolumeClaim":
		var p pvcSpec
		decodeSpec(t, o, &p)
		require.NotEmpty(t, p.AccessModes, "%s: spec.accessModes is missing", o)
		require.NotEmpty(t, p.Resources.Requests["storage"], "%s: spec.resources.requests.storage is missing", o)
		b.claims[name] = true
	}
}

// selects reports whether labels carry every pair of selector.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// resolvePort returns the number of a port of c, by number or name.
func resolvePort(c container, p portRef) (int, bool) {
	for _, cp := range c.Ports {
		if p.name != "" && cp.Name == p.name || p.name == "" && cp.ContainerPort == p.num {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// podPort reports whether any container of the pod declares p.
func podPort(pod podSpec, p portRef) bool {
	for _, c := range pod.Containers {
		if _, ok := resolvePort(c, p); ok {
			return true
		}
	}
	return false
}

// selectedPods returns the pod templates of the bundle's Deployments whose
// labels carry every pair of selector.
func (b *bundle) selectedPods(selector map[string]string) map[string]podSpec {
	out := map[string]podSpec{}
	for name, d := range b.deployments {
		if selects(selector, d.Template.Metadata.Labels) {
			out[name] = d.Template.Spec
		}
	}
	return out
}

// checkReferences checks every port, volume, ConfigMap and Secret a pod,
// Service or NetworkPolicy of the bundle names.
func (b *bundle) checkReferences(t *testing.T) {
	for name, d := range b.deployments {
		pod := d.Template.Spec
		volumes := map[string]volume{}
		for _, v := range pod.Volumes {
			require.NotContains(t, volumes, v.Name, "Deployment %s: volume %q twice", name, v.Name)
			volumes[v.Name] = v
			switch {
			case v.ConfigMap != nil:
				cm, ok := b.configMaps[v.ConfigMap.Name]
				require.True(t, ok, "Deployment %s: volume %q: no ConfigMap %q", name, v.Name, v.ConfigMap.Name)
				for _, it := range v.ConfigMap.Items {
					require.Contains(t, cm.Data, it.Key, "Deployment %s: volume %q: ConfigMap %q has no key %q", name, v.Name, cm.Metadata.Name, it.Key)
				}
			case v.Secret != nil:
				s, ok := b.secrets[v.Secret.SecretName]
				require.True(t, ok, "Deployment %s: volume %q: no Secret %q", name, v.Name, v.Secret.SecretName)
				for _, it := range v.Secret.Items {
					require.Contains(t, s.StringData, it.Key, "Deployment %s: volume %q: Secret %q has no key %q", name, v.Name, v.Secret.SecretName, it.Key)
				}
			case v.PersistentVolumeClaim != nil:
				require.True(t, b.claims[v.PersistentVolumeClaim.ClaimName], "Deployment %s: volume %q: no PersistentVolumeClaim %q", name, v.Name, v.PersistentVolumeClaim.ClaimName)
			case v.EmptyDir != nil:
			default:
				t.Fatalf("Deployment %s: volume %q has no source these manifests use", name, v.Name)
			}
		}
		mounted := map[string]bool{}
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			where := fmt.Sprintf("Deployment %s, container %s", name, c.Name)
			for _, m := range c.VolumeMounts {
				require.Contains(t, volumes, m.Name, "%s: mounts the undeclared volume %q", where, m.Name)
				require.True(t, path.IsAbs(m.MountPath), "%s: mountPath %q is not absolute", where, m.MountPath)
				mounted[m.Name] = true
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				require.NotZero(t, p.ContainerPort, "%s: a port has no containerPort", where)
				if p.Name != "" {
					require.False(t, ports[p.Name], "%s: port name %q twice", where, p.Name)
					ports[p.Name] = true
				}
			}
			for kind, pr := range map[string]*probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
				if pr == nil {
					continue
				}
				var port portRef
				switch {
				case pr.HTTPGet != nil:
					port = pr.HTTPGet.Port
					require.True(t, strings.HasPrefix(pr.HTTPGet.Path, "/"), "%s: %s path %q", where, kind, pr.HTTPGet.Path)
				case pr.TCPSocket != nil:
					port = pr.TCPSocket.Port
				default:
					t.Fatalf("%s: %s has neither httpGet nor tcpSocket", where, kind)
				}
				_, ok := resolvePort(c, port)
				require.True(t, ok, "%s: %s port %s is not a port of the container", where, kind, port)
			}
			for _, e := range c.Env {
				require.NotEmpty(t, e.Name, "%s: an env entry has no name", where)
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && !r.Optional {
					s, ok := b.secrets[r.Name]
					require.True(t, ok, "%s: env %s: no Secret %q", where, e.Name, r.Name)
					require.Contains(t, s.StringData, r.Key, "%s: env %s: Secret %q has no key %q", where, e.Name, r.Name, r.Key)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !r.Optional {
					cm, ok := b.configMaps[r.Name]
					require.True(t, ok, "%s: env %s: no ConfigMap %q", where, e.Name, r.Name)
					require.Contains(t, cm.Data, r.Key, "%s: env %s: ConfigMap %q has no key %q", where, e.Name, r.Name, r.Key)
				}
			}
			for _, ef := range c.EnvFrom {
				if r := ef.SecretRef; r != nil && !r.Optional {
					require.Contains(t, b.secrets, r.Name, "%s: envFrom: no Secret %q", where, r.Name)
				}
				if r := ef.ConfigMapRef; r != nil && !r.Optional {
					require.Contains(t, b.configMaps, r.Name, "%s: envFrom: no ConfigMap %q", where, r.Name)
				}
			}
		}
		for v := range volumes {
			require.True(t, mounted[v], "Deployment %s: volume %q is mounted by no container", name, v)
		}
	}

	for name, s := range b.services {
		pods := b.selectedPods(s.Selector)
		require.NotEmpty(t, pods, "Service %s: its selector %v matches no Deployment", name, s.Selector)
		for _, p := range s.Ports {
			target := p.TargetPort
			if target.zero() {
				target = portRef{num: p.Port}
			}
			for dep, pod := range pods {
				require.True(t, podPort(pod, target), "Service %s: port %q targets %s, which Deployment %s does not declare", name, p.Name, target, dep)
			}
		}
	}

	for name, p := range b.policies {
		pods := b.selectedPods(p.PodSelector.MatchLabels)
		require.NotEmpty(t, pods, "NetworkPolicy %s: its podSelector matches no Deployment", name)
		for _, in := range p.Ingress {
			require.NotEmpty(t, in.From, "NetworkPolicy %s: an ingress rule without from allows everyone", name)
			for _, port := range in.Ports {
				for dep, pod := range pods {
					require.True(t, podPort(pod, port.Port), "NetworkPolicy %s: port %s is not declared by Deployment %s", name, port.Port, dep)
				}
			}
		}
	}
}

// envRefRE finds ${VAR} without a default in a config file.
var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// loadVigilConfig parses a config file as vigil does and checks its rules.
func loadVigilConfig(t *testing.T, file string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	cfg, err := config.Parse(data, file)
	require.NoError(t, err, "vigil's config loader refuses %s", file)
	for _, w := range cfg.Warnings {
		t.Log("warning:", w)
	}
	// A rule_files pattern that matches nothing is only a warning to vigil;
	// here it means a file is not where the manifests put it.
	for _, pattern := range cfg.RuleFiles {
		matches, err := filepath.Glob(pattern)
		require.NoError(t, err)
		require.NotEmpty(t, matches, "rule_files %q matches no file", pattern)
	}
	require.NoError(t, rules.CheckConfig(cfg), "the rules of %s", file)
	return cfg
}

// listenPort returns the port vigil listens on under cfg.
func listenPort(t *testing.T, cfg *config.Config) int {
	t.Helper()
	_, port, err := net.SplitHostPort(cfg.ListenAddress())
	require.NoError(t, err, "server.listen %q", cfg.ListenAddress())
	n, err := strconv.Atoi(port)
	require.NoError(t, err, "server.listen %q", cfg.ListenAddress())
	return n
}

// configFlag returns the value of --config in args.
func configFlag(t *testing.T, args []string) string {
	t.Helper()
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
		if a == "--config" && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no --config in %q", args)
	return ""
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// checkVigilContainer checks a vigil container of a bundle's Deployment:
// hardened, limited, probed on the port its config listens on, and its
// config (materialized from the ConfigMap as Kubernetes mounts it) loads.
func (b *bundle) checkVigilContainer(t *testing.T, pod podSpec, c container) {
	sc := c.SecurityContext
	require.NotNil(t, sc, "no securityContext")
	require.True(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "runAsNonRoot")
	require.True(t, sc.RunAsUser != nil && *sc.RunAsUser != 0, "runAsUser must be set and not root")
	require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
	require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation must be false")
	require.Contains(t, sc.Capabilities.Drop, "ALL", "capabilities.drop")
	for _, r := range []string{"cpu", "memory"} {
		require.NotEmpty(t, c.Resources.Requests[r], "resources.requests.%s", r)
		require.NotEmpty(t, c.Resources.Limits[r], "resources.limits.%s", r)
	}

	volumes := map[string]volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	// The config file: a ConfigMap mounted at its directory.
	cfgPath := configFlag(t, c.Args)
	var cm *object
	var items []keyToPath
	for _, m := range c.VolumeMounts {
		if v := volumes[m.Name]; m.MountPath == path.Dir(cfgPath) && m.SubPath == "" && v.ConfigMap != nil {
			cm, items = b.configMaps[v.ConfigMap.Name], v.ConfigMap.Items
		}
	}
	require.NotNil(t, cm, "no ConfigMap is mounted at %s, the directory of --config %s", path.Dir(cfgPath), cfgPath)
	dir := t.TempDir()
	if len(items) == 0 {
		for k := range cm.Data {
			items = append(items, keyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
		require.NoError(t, os.WriteFile(filepath.Join(dir, it.Path), []byte(cm.Data[it.Key]), 0o600))
	}
	file := filepath.Join(dir, path.Base(cfgPath))
	require.FileExists(t, file, "ConfigMap %s has no %s", cm.Metadata.Name, path.Base(cfgPath))

	// Literal env values are what vigil sees; secrets stay unset (a warning).
	provided := map[string]bool{}
	for _, e := range c.Env {
		provided[e.Name] = true
		if e.ValueFrom == nil {
			t.Setenv(e.Name, e.Value)
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			for k := range b.secrets[ef.SecretRef.Name].StringData {
				provided[k] = true
			}
		}
		if ef.ConfigMapRef != nil {
			for k := range b.configMaps[ef.ConfigMapRef.Name].Data {
				provided[k] = true
			}
		}
	}
	for _, m := range envRefRE.FindAllStringSubmatch(cm.Data[path.Base(cfgPath)], -1) {
		require.True(t, provided[m[1]], "the config reads ${%s}, which the container's env does not set", m[1])
	}

	cfg := loadVigilConfig(t, file)
	port := listenPort(t, cfg)
	for _, p := range []struct {
		kind  string
		probe *probe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/health"},
		{"readinessProbe", c.ReadinessProbe, "/ready"},
	} {
		require.True(t, p.probe != nil && p.probe.HTTPGet != nil, "%s: an httpGet probe is required", p.kind)
		require.Equal(t, p.path, p.probe.HTTPGet.Path, "%s path", p.kind)
		n, ok := resolvePort(c, p.probe.HTTPGet.Port)
		require.True(t, ok, "%s port %s", p.kind, p.probe.HTTPGet.Port)
		require.Equal(t, port, n, "%s probes port %d; vigil listens on %d (server.listen)", p.kind, n, port)
	}

	// With a read-only root filesystem, everything vigil writes must sit on
	// a writable volume and everything it reads on a mounted one.
	writable := func(p string) bool {
		for _, m := range c.VolumeMounts {
			v := volumes[m.Name]
			if !m.ReadOnly && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil) && under(p, m.MountPath) {
				return true
			}
		}
		return false
	}
	readable := func(p string) bool {
		for _, m := range c.VolumeMounts {
			if under(p, m.MountPath) {
				return true
			}
		}
		return false
	}
	require.True(t, writable(cfg.DataDir), "data_dir %s is not on a writable volume", cfg.DataDir)
	if cfg.Logging.Output == "file" || cfg.Logging.Output == "both" {
		require.True(t, writable(cfg.Logging.File), "logging.file %s is not on a writable volume", cfg.Logging.File)
	}
	for _, l := range cfg.Collectors.Logs {
		if l.File != "" {
			require.True(t, writable(l.File), "collectors.logs %q: file %s is not on a writable volume", l.Name, l.File)
		}
		for _, p := range l.Paths {
			require.True(t, readable(path.Dir(p)), "collectors.logs %q: %s is on no mounted volume", l.Name, p)
		}
	}
}

func TestKubernetes(t *testing.T) {
	kust := readObjects(t, filepath.Join(kubeDir, "kustomization.yaml"))
	require.Len(t, kust, 1)
	require.Equal(t, "Kustomization", kust[0].Kind)
	require.Equal(t, apiVersions["Kustomization"], kust[0].APIVersion)
	require.NotEmpty(t, kust[0].Resources)
	for _, r := range kust[0].Resources {
		require.FileExists(t, filepath.Join(kubeDir, r), "kustomization.yaml lists %s", r)
	}

	// gateway.yaml is applied on its own, with the Secret it reads.
	bundles := []struct {
		name  string
		files []string
	}{
		{"sidecar", kust[0].Resources},
		{"gateway", []string{"gateway.yaml", "secret.yaml"}},
	}

	covered := map[string]bool{"kustomization.yaml": true}
	for _, bd := range bundles {
		for _, f := range bd.files {
			covered[f] = true
		}
	}
	all, err := filepath.Glob(filepath.Join(kubeDir, "*.y*ml"))
	require.NoError(t, err)
	for _, f := range all {
		require.True(t, covered[filepath.Base(f)], "%s is in no bundle this test checks", f)
	}

	for _, bd := range bundles {
		t.Run(bd.name, func(t *testing.T) {
			b := newBundle(t, bd.files)
			b.checkReferences(t)
			vigils := 0
			for name, d := range b.deployments {
				pod := d.Template.Spec
				for _, c := range pod.Containers {
					if !strings.HasPrefix(c.Image, vigilImage+":") {
						continue
					}
					vigils++
					t.Run(name+"/"+c.Name, func(t *testing.T) {
						b.checkVigilContainer(t, pod, c)
					})
				}
			}
			require.NotZero(t, vigils, "no %s container", vigilImage)
		})
	}

	t.Run("sidecar shape", func(t *testing.T) {
		b := newBundle(t, kust[0].Resources)
		d, ok := b.deployments["app"]
		require.True(t, ok, "no Deployment app")
		require.Equal(t, 3, *d.Replicas)
		var names []string
		for _, c := range d.Template.Spec.Containers {
			names = append(names, c.Name)
		}
		require.ElementsMatch(t, []string{"app", "vigil"}, names)
		// A log volume shared by the app and vigil.
		shared := false
		for _, v := range d.Template.Spec.Volumes {
			if v.EmptyDir == nil {
				continue
			}
			n := 0
			for _, c := range d.Template.Spec.Containers {
				if slices.ContainsFunc(c.VolumeMounts, func(m volumeMount) bool { return m.Name == v.Name }) {
					n++
				}
			}
			shared = shared || n == len(d.Template.Spec.Containers)
		}
		require.True(t, shared, "no emptyDir volume is mounted by both containers")
		require.Contains(t, b.services, "app")
		require.Contains(t, b.configMaps, "vigil-config")
		require.Contains(t, b.secrets, "vigil-secrets")
		// Ingress is denied by default.
		deny := false
		for _, p := range b.policies {
			deny = deny || len(p.PodSelector.MatchLabels) == 0 && slices.Contains(p.PolicyTypes, "Ingress") && len(p.Ingress) == 0
		}
		require.True(t, deny, "no default-deny ingress NetworkPolicy")
	})
}

// Compose file types: only the fields the checks read.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]yaml.Node      `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	User        string            `yaml:"user"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
}

// composeBuild is build: as a context path or as {context, dockerfile}.
type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// mount is a short-syntax volume: source:target[:mode].
type mount struct{ source, target string }

func (m mount) bind() bool {
	return strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/")
}

func parseMount(t *testing.T, service, s string) mount {
	t.Helper()
	parts := strings.Split(s, ":")
	require.True(t, len(parts) == 2 || len(parts) == 3, "service %s: volume %q is not source:target[:mode]", service, s)
	require.True(t, path.IsAbs(parts[1]), "service %s: volume %q: target is not absolute", service, s)
	return mount{source: parts[0], target: parts[1]}
}

// composeVarRE is compose's ${VAR}, ${VAR:-default} and ${VAR-default}.
var composeVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// interpolate replaces compose variables with their defaults, as compose
// does with an empty shell.
func interpolate(s string) string {
	return composeVarRE.ReplaceAllStringFunc(s, func(m string) string {
		return composeVarRE.FindStringSubmatch(m)[2]
	})
}

// hostOf returns the host of a URL or host:port.
func hostOf(t *testing.T, s string) string {
	t.Helper()
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		require.NoError(t, err)
		return u.Hostname()
	}
	h, _, err := net.SplitHostPort(s)
	require.NoError(t, err)
	return h
}

func TestCompose(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(composeDir, "docker-compose.yml"))
	require.NoError(t, err)
	var cf composeFile
	require.NoError(t, yaml.Unmarshal(data, &cf))

	for _, name := range []string{"app", "postgres", "vigil", "grafana", "loki"} {
		require.Contains(t, cf.Services, name, "service %s is missing", name)
	}
	require.Equal(t, "postgres:13", cf.Services["postgres"].Image)
	require.NotEmpty(t, cf.Services["postgres"].Environment["POSTGRES_PASSWORD"])
	require.True(t, strings.HasPrefix(cf.Services["grafana"].Image, "grafana/grafana"))
	require.True(t, strings.HasPrefix(cf.Services["loki"].Image, "grafana/loki"))

	for name, s := range cf.Services {
		t.Run("service "+name, func(t *testing.T) {
			require.True(t, s.Image != "" || s.Build != nil, "neither image nor build")
			if s.Build != nil {
				ctx := filepath.Join(composeDir, s.Build.Context)
				require.DirExists(t, ctx, "build context")
				df := s.Build.Dockerfile
				if df == "" {
					df = "Dockerfile"
				}
				require.FileExists(t, filepath.Join(ctx, df), "build dockerfile")
			}
			for _, v := range s.Volumes {
				m := parseMount(t, name, v)
				if m.bind() {
					_, err := os.Stat(filepath.Join(composeDir, m.source))
					require.NoError(t, err, "volume %q: %s does not exist (relative to %s)", v, m.source, composeDir)
				} else {
					require.Contains(t, cf.Volumes, m.source, "volume %q: %s is not declared under volumes", v, m.source)
				}
			}
			var deps []string
			switch s.DependsOn.Kind {
			case yaml.SequenceNode:
				require.NoError(t, s.DependsOn.Decode(&deps))
			case yaml.MappingNode:
				var m map[string]yaml.Node
				require.NoError(t, s.DependsOn.Decode(&m))
				for k := range m {
					deps = append(deps, k)
				}
			}
			for _, dep := range deps {
				_, ok := cf.Services[dep]
				require.True(t, ok, "depends_on %s, which is no service", dep)
			}
			for _, p := range s.Ports {
				parts := strings.Split(p, ":")
				for _, n := range parts {
					_, err := strconv.Atoi(n)
					require.NoError(t, err, "port mapping %q", p)
				}
			}
		})
	}

	t.Run("grafana provisioning", func(t *testing.T) {
		targets := map[string]string{}
		for _, v := range cf.Services["grafana"].Volumes {
			m := parseMount(t, "grafana", v)
			targets[m.target] = path.Clean(m.source)
		}
		for target, source := range map[string]string{
			"/etc/grafana/provisioning/datasources": "../../dashboards/provisioning/datasources",
			"/etc/grafana/provisioning/dashboards":  "../../dashboards/provisioning/dashboards",
			"/var/lib/grafana/dashboards":           "../../dashboards",
		} {
			require.Equal(t, source, targets[target], "grafana's %s", target)
			require.DirExists(t, filepath.Join(composeDir, source))
		}
	})

	// The sidecar and the gateway pair of the fleet run vigil's image.
	for _, name := range []string{"vigil", "vigil-gateway-a", "vigil-gateway-b"} {
		t.Run(name+" config", func(t *testing.T) { checkComposeVigil(t, cf, name) })
	}
}

// checkComposeVigil checks a compose service that runs vigil: hardened,
// its config loads, its port is published and every host it names is a
// service of the stack.
func checkComposeVigil(t *testing.T, cf composeFile, name string) {
	s, ok := cf.Services[name]
	require.True(t, ok, "service %s is missing", name)
	{
		if name == "vigil" {
			require.NotNil(t, s.Build, "vigil is built from the repository")
		} else {
			require.Equal(t, cf.Services["vigil"].Image, s.Image, "%s runs the image the vigil service builds", name)
		}
		require.NotEmpty(t, s.User, "user")
		require.False(t, strings.HasPrefix(s.User, "0") || strings.HasPrefix(s.User, "root"), "vigil runs as root")
		require.True(t, s.ReadOnly, "read_only")
		require.Contains(t, s.CapDrop, "ALL")

		// The container's filesystem as far as the config sees it: each
		// bind mount linked at its target under a temporary root.
		root := t.TempDir()
		for _, v := range s.Volumes {
			m := parseMount(t, "vigil", v)
			if !m.bind() {
				continue
			}
			src, err := filepath.Abs(filepath.Join(composeDir, m.source))
			require.NoError(t, err)
			dst := filepath.Join(root, m.target)
			require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
			require.NoError(t, os.Symlink(src, dst))
		}
		cfgPath := configFlag(t, s.Command)
		file := filepath.Join(root, cfgPath)
		require.FileExists(t, file, "--config %s is not mounted", cfgPath)

		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = interpolate(v)
		}
		for _, m := range envRefRE.FindAllStringSubmatch(string(raw), -1) {
			require.Contains(t, env, m[1], "the config reads ${%s}, which the service's environment does not set", m[1])
		}
		for k, v := range env {
			t.Setenv(k, v)
		}
		cfg := loadVigilConfig(t, file)

		port := strconv.Itoa(listenPort(t, cfg))
		require.True(t, slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }),
			"vigil listens on %s, which ports %q does not publish", port, s.Ports)

		// Every host the config names is a service of the stack.
		hosts := map[string]string{}
		if a := cfg.Collectors.App; a != nil {
			for _, tg := range a.Targets {
				hosts["collectors.app.targets "+tg] = hostOf(t, tg)
			}
			if a.Health != nil {
				hosts["collectors.app.health.url"] = hostOf(t, a.Health.URL)
			}
		}
		if l := cfg.Collectors.Loki; l != nil {
			hosts["collectors.loki.url"] = hostOf(t, l.URL)
		}
		if db := cfg.Collectors.Database; db != nil {
			require.NotEmpty(t, db.DSN, "collectors.database.dsn")
			hosts["collectors.database.dsn"] = hostOf(t, string(db.DSN))
		}
		if f := cfg.Alerts.Forward; f != nil {
			for i, u := range f.URLs {
				hosts[fmt.Sprintf("alerts.forward.urls[%d]", i)] = hostOf(t, u)
			}
		}
		if cfg.Storage.Incidents != "" {
			hosts["storage.incidents"] = hostOf(t, string(cfg.Storage.Incidents))
		}
		for what, h := range hosts {
			_, ok := cf.Services[h]
			require.True(t, ok, "%s names host %q, which is no service", what, h)
		}
	}
}
