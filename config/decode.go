package config

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder fills structs from a yaml.Node tree. It is strict (unknown keys and
// type mismatches are errors), collects every error instead of stopping at the
// first, expands ${VAR} in scalar values and records the line of every key.
type decoder struct {
	*reporter
	lookupEnv func(string) (string, bool)
	warnings  []string
}

// nodeDecoder is implemented by types that accept more than one YAML shape.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

var (
	nodeDecoderType  = reflect.TypeFor[nodeDecoder]()
	unmarshalerType  = reflect.TypeFor[yaml.Unmarshaler]()
	envNameRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	defaultLookupEnv = os.LookupEnv
)

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names a node's kind for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// decode fills v from n; path is the key path of n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if v.CanAddr() {
		if p := v.Addr(); p.Type().Implements(nodeDecoderType) {
			p.Interface().(nodeDecoder).decodeNode(d, n, path)
			return
		}
		if p := v.Addr(); p.Type().Implements(unmarshalerType) {
			if isNull(n) {
				return
			}
			c := *n
			if c.Kind == yaml.ScalarNode {
				c.Value = d.expand(c.Value, c.Line, path)
			}
			if err := p.Interface().(yaml.Unmarshaler).UnmarshalYAML(&c); err != nil {
				d.valueErr(n.Line, path, "%s", err.Error())
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) && v.Type().Elem().Kind() != reflect.Struct {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		// An empty key that holds a struct (`infrastructure:`) turns it on
		// with its defaults.
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if isNull(n) {
			return
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Interface:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.valueErr(n.Line, path, "%s", err.Error())
		}
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.ScalarNode {
		d.valueErr(n.Line, path, "must be %s, not %s", kindName(v.Kind()), describe(n))
		return
	}
	s := d.expand(n.Value, n.Line, path)
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.valueErr(n.Line, path, "%q is not an integer", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(strings.TrimSpace(s), "_", ""), 0, 64)
		if err != nil || v.OverflowUint(u) {
			d.valueErr(n.Line, path, "%q is not a non-negative integer", s)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) {
			d.valueErr(n.Line, path, "%q is not a number", s)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.valueErr(n.Line, path, "%q is not true or false", s)
		}
	default:
		d.valueErr(n.Line, path, "cannot hold %s (unsupported field type %s)", describe(n), v.Type())
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	}
	return k.String()
}

// pair is one key and value of a mapping.
type pair struct{ key, value *yaml.Node }

// pairs returns a mapping's entries, with `<<: *anchor` merge keys expanded:
// explicit keys win over merged ones. Keys given twice are reported.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	explicit := map[string]int{}
	var out, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0 && k.Tag != "!!str") {
			merged = append(merged, d.mergePairs(val, path)...)
			continue
		}
		if first, ok := explicit[k.Value]; ok {
			d.keyErr(k.Line, joinPath(path, k.Value), "key %q is given twice (first at line %d)", k.Value, first)
			continue
		}
		explicit[k.Value] = k.Line
		out = append(out, pair{k, val})
	}
	seen := map[string]bool{}
	for _, p := range merged {
		if _, ok := explicit[p.key.Value]; ok || seen[p.key.Value] {
			continue
		}
		seen[p.key.Value] = true
		out = append(out, p)
	}
	return out
}

func (d *decoder) mergePairs(n *yaml.Node, path string) []pair {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return d.pairs(n, path)
	case yaml.SequenceNode:
		var out []pair
		// Earlier maps in a merge list win, as YAML's merge key says.
		for i := len(n.Content) - 1; i >= 0; i-- {
			out = append(d.mergePairs(n.Content[i], path), out...)
		}
		return out
	}
	d.valueErr(n.Line, path, "<< must merge a mapping, not %s", describe(n))
	return nil
}

// field is where a YAML key lands in a struct.
type field struct {
	index []int
	key   string
}

// fields lists a struct's YAML keys, following `yaml:",inline"` embedded
// structs and `alias:"..."` second names.
func fields(t reflect.Type) map[string]field {
	out := map[string]field{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if strings.Contains(opts, "inline") {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			out[name] = field{index: idx, key: name}
			if alias := f.Tag.Get("alias"); alias != "" {
				out[alias] = field{index: idx, key: name}
			}
		}
	}
	walk(t, nil)
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.valueErr(n.Line, path, "must be a mapping, not %s", describe(n))
		return
	}
	fs := fields(v.Type())
	set := map[string]string{}
	for _, p := range d.pairs(n, path) {
		key := p.key.Value
		kp := joinPath(path, key)
		f, ok := fs[key]
		if !ok {
			d.keyErr(p.key.Line, kp, "unknown key %q%s", key, suggest(key, fs))
			continue
		}
		if other, dup := set[f.key]; dup {
			d.keyErr(p.key.Line, kp, "%s and %s are the same key; give one", other, key)
			continue
		}
		set[f.key] = key
		d.positions[kp] = p.key.Line
		if f.key != key {
			d.positions[joinPath(path, f.key)] = p.key.Line
		}
		d.decode(p.value, v.FieldByIndex(f.index), joinPath(path, f.key))
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.valueErr(n.Line, path, "must be a mapping, not %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.valueErr(n.Line, path, "unsupported map key type %s", v.Type().Key())
		return
	}
	// Like yaml.v3, decoding into a map that holds defaults adds to it.
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, p := range d.pairs(n, path) {
		k := resolve(p.key)
		if k.Kind != yaml.ScalarNode {
			d.valueErr(k.Line, path, "keys must be strings, not %s", describe(k))
			continue
		}
		kp := joinPath(path, k.Value)
		d.positions[kp] = k.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())); old.IsValid() {
			elem.Set(old)
		}
		d.decode(p.value, elem, kp)
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.valueErr(n.Line, path, "must be a list, not %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		ep := indexPath(path, i)
		d.positions[ep] = e.Line
		if name := d.elementName(e, ep); name != "" {
			d.names[ep] = name
		}
		d.decode(e, s.Index(i), ep)
	}
	v.Set(s)
}

// elementName returns the name of a list element that is a mapping with a
// `name` (or `username`) key, so that errors can quote it.
func (d *decoder) elementName(n *yaml.Node, path string) string {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i].Value, resolve(n.Content[i+1])
		if (k == "name" || k == "username") && val.Kind == yaml.ScalarNode && !isNull(val) {
			return d.expandQuiet(val.Value)
		}
	}
	return ""
}

// expand replaces ${VAR} and ${VAR:-default} in a scalar value with the
// environment. $${ stands for a literal ${. An unset variable without a
// default becomes empty, with a warning.
func (d *decoder) expand(s string, line int, path string) string {
	out, unset, bad := expandEnv(s, d.lookupEnv)
	for _, name := range unset {
		d.warnings = append(d.warnings,
			d.makeError(line, path, ": ", fmt.Sprintf("${%s} is not set; using an empty string", name)).Error())
	}
	for _, ref := range bad {
		d.valueErr(line, path, "%q is not a valid variable reference (use ${NAME} or ${NAME:-default})", ref)
	}
	return out
}

// expandQuiet expands without reporting; used where the value is also
// decoded (and so reported) elsewhere.
func (d *decoder) expandQuiet(s string) string {
	out, _, _ := expandEnv(s, d.lookupEnv)
	return out
}

func expandEnv(s string, lookup func(string) (string, bool)) (out string, unset, bad []string) {
	if !strings.Contains(s, "${") {
		return s, nil, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			bad = append(bad, s[i:])
			b.WriteString(s[i:])
			break
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !envNameRE.MatchString(name) {
			bad = append(bad, "${"+ref+"}")
			continue
		}
		val, ok := lookup(name)
		switch {
		case ok && val != "":
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		case !ok:
			unset = append(unset, name)
		}
	}
	return b.String(), unset, bad
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key, if
// one is within two edits.
func suggest(key string, known map[string]field) string {
	best, bestDist := "", 3
	for k := range known {
		if dist := editDistance(strings.ToLower(key), strings.ToLower(k)); dist < bestDist || (dist == bestDist && k < best) {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
