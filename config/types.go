package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as the seed writes it: 5m, 1h, 30s, 1d.
type Duration time.Duration

// UnmarshalYAML parses a Prometheus-style duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a duration such as 5m, not %s", describe(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in the same form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats the duration as Prometheus does (1h30m, 5m, 0s).
func (d Duration) String() string { return model.Duration(d).String() }

// ParseDuration parses 5m, 1h30m, 1d, 1w; a bare 0 is zero.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use a number and a unit: 30s, 5m, 1h, 1d)", s)
	}
	return time.Duration(v), nil
}

// Size is a number of bytes written as 100MB, 512KiB or 1GB. A bare number is
// megabytes, as lumberjack counts them.
type Size int64

// UnmarshalYAML parses a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a size such as 100MB, not %s", describe(n))
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalYAML writes the size in bytes with a unit.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// String formats the size with the largest whole binary unit.
func (s Size) String() string { return units.Base2Bytes(s).String() }

// Megabytes returns the size in whole megabytes, at least 1 when non-zero.
func (s Size) Megabytes() int {
	if s <= 0 {
		return 0
	}
	mb := int(int64(s) / (1 << 20))
	if mb == 0 {
		mb = 1
	}
	return mb
}

// ParseSize parses 100MB, 100MiB, 1G, 512k; a bare number is megabytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q is not a size: it is negative", s)
		}
		return n << 20, nil
	}
	u := strings.ToUpper(t)
	u = strings.TrimSuffix(u, "IB")
	u = strings.TrimSuffix(u, "B")
	if u == "" {
		return 0, fmt.Errorf("%q is not a size (use a number and a unit: 512KB, 100MB, 1GB)", s)
	}
	v, err := units.ParseBase2Bytes(u + "B")
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (use a number and a unit: 512KB, 100MB, 1GB)", s)
	}
	return int64(v), nil
}

// Secret is a string that never prints: logs, errors and API answers show
// "<secret>".
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// GoString hides the value from %#v too.
func (s Secret) GoString() string { return "config.Secret(" + strconv.Quote(s.String()) + ")" }

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Value returns the secret itself, for the one place that must use it.
func (s Secret) Value() string { return string(s) }

func itoa(i int) string { return strconv.Itoa(i) }
