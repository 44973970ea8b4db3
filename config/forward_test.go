package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestForwardDecodeAndTargets(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gw.token"), []byte("s3cret\n"), 0o600))
	file := filepath.Join(dir, "vigil.yaml")
	doc := `service: checkout
global:
  external_labels: {pod: checkout-0, replica: a}
storage:
  incidents: postgres://vigil:pw@db:5432/vigil?sslmode=disable
alerts:
  forward:
    urls:
      - http://gateway-a:9090
      - http://gateway-b:9090/
      - https://gateway-c:8443/vigil
    token_file: gw.token
    timeout: 3s
    queue_capacity: 500
`
	require.NoError(t, os.WriteFile(file, []byte(doc), 0o600))
	cfg, err := Load(file)
	require.NoError(t, err)
	f := cfg.Alerts.Forward
	require.NotNil(t, f)
	require.False(t, f.NotifyLocally)
	require.Equal(t, filepath.Join(dir, "gw.token"), f.TokenFile, "token_file is relative to the config file")
	require.Equal(t, 3*time.Second, f.ForwardTimeout())
	require.Equal(t, 500, f.ForwardQueueCapacity())
	require.Equal(t, "postgres://vigil:pw@db:5432/vigil?sslmode=disable", string(cfg.Storage.Incidents))
	require.Equal(t, "<secret>", cfg.Storage.Incidents.String(), "the DSN's password never prints")

	pc, tgs, err := cfg.ForwardTargets()
	require.NoError(t, err)
	require.Equal(t, labels.FromStrings("pod", "checkout-0", "replica", "a"), pc.GlobalConfig.ExternalLabels)
	ams := pc.AlertingConfig.AlertmanagerConfigs
	require.Len(t, ams, 2, "the two http URLs without a prefix share one set")
	require.Equal(t, "http", ams[0].Scheme)
	require.Empty(t, ams[0].PathPrefix)
	require.Equal(t, "https", ams[1].Scheme)
	require.Equal(t, "/vigil", ams[1].PathPrefix)
	for _, am := range ams {
		require.Equal(t, model.Duration(3*time.Second), am.Timeout)
		require.Equal(t, "v2", string(am.APIVersion))
		require.Equal(t, &commonconfig.Authorization{Type: "Bearer", CredentialsFile: filepath.Join(dir, "gw.token")},
			am.HTTPClientConfig.Authorization)
	}
	require.Len(t, tgs, 2)
	require.Equal(t, []model.LabelSet{{model.AddressLabel: "gateway-a:9090"}, {model.AddressLabel: "gateway-b:9090"}},
		tgs["config-0"][0].Targets)
	require.Equal(t, []model.LabelSet{{model.AddressLabel: "gateway-c:8443"}}, tgs["config-1"][0].Targets)
}

func TestForwardDefaults(t *testing.T) {
	cfg, err := Parse([]byte("service: checkout\nalerts:\n  forward:\n    urls: [http://gw:9090]\n    token: abc\n    notify_locally: true\n"), "vigil.yaml")
	require.NoError(t, err)
	f := cfg.Alerts.Forward
	require.True(t, f.NotifyLocally)
	require.Equal(t, DefaultForwardTimeout, f.ForwardTimeout())
	require.Equal(t, DefaultForwardQueueCapacity, f.ForwardQueueCapacity())
	pc, _, err := cfg.ForwardTargets()
	require.NoError(t, err)
	require.Equal(t, commonconfig.Secret("abc"), pc.AlertingConfig.AlertmanagerConfigs[0].HTTPClientConfig.Authorization.Credentials)

	// Without the block: no gateway, and vigil's own receivers as before.
	cfg, err = Parse([]byte("service: checkout\n"), "vigil.yaml")
	require.NoError(t, err)
	require.Nil(t, cfg.Alerts.Forward)
	pc, tgs, err := cfg.ForwardTargets()
	require.NoError(t, err)
	require.Empty(t, pc.AlertingConfig.AlertmanagerConfigs)
	require.Empty(t, tgs)
}

func TestIncidentStoreURL(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"postgresql://db/vigil", ""},
		{"postgres:///vigil?host=/run/postgresql", ""},
		{"postgres:///vigil", `vigil.yaml:3: storage.incidents: "postgres:///vigil" has no host`},
		{"host=db dbname=vigil password=pw", `vigil.yaml:3: storage.incidents: must be a postgres:// URL such as postgres://vigil@db:5432/vigil (a key=value DSN is not taken)`},
		{"postgres://vigil:pw@db:bad/vigil", `vigil.yaml:3: storage.incidents: is not a URL: parse "postgres://vigil:xxxxx@db:bad/vigil": invalid port ":bad" after host`},
	} {
		_, err := Parse([]byte("service: checkout\nstorage:\n  incidents: \""+tc.value+"\"\n"), "vigil.yaml")
		if tc.want == "" {
			require.NoError(t, err, tc.value)
			continue
		}
		require.ErrorContains(t, err, tc.want)
		require.NotContains(t, err.Error(), "pw", "the password is not quoted")
	}
}
