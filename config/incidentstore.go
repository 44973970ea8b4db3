package config

import "net/url"

// validateIncidentStore checks storage.incidents: empty (bbolt in
// data_dir) or a postgres:// URL. What the store does with it belongs to
// the PostgreSQL store; this only tells a wrong value at load, with its line.
func (c *Config) validateIncidentStore(r *reporter) {
	raw := string(c.Storage.Incidents)
	if raw == "" {
		return
	}
	const path = "storage.incidents"
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, password included.
		r.valueErr(0, path, "is not a URL: %s", redactUserinfo(err.Error()))
		return
	}
	if u.Scheme == "" {
		// Not quoted: a key=value DSN may hold password=.
		r.valueErr(0, path, "must be a postgres:// URL such as postgres://vigil@db:5432/vigil (a key=value DSN is not taken)")
		return
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		r.valueErr(0, path, "%q must be a postgres:// URL (or left out for the bbolt store in data_dir)", u.Redacted())
		return
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		r.valueErr(0, path, "%q has no host", u.Redacted())
	}
}
