package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-sh/vigil/notifier"
)

// fakeSilences keeps silences in memory, validating as the notifier does
// in outline.
type fakeSilences struct {
	mu   sync.Mutex
	list []notifier.Silence
}

func (f *fakeSilences) AddSilence(s notifier.Silence) (notifier.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.TrimSpace(s.Matchers) == "" || s.CreatedBy == "" || !s.EndsAt.After(time.Now()) {
		return s, fmt.Errorf("%w: matchers, createdBy and a future end are required", notifier.ErrInvalidSilence)
	}
	if s.StartsAt.IsZero() {
		s.StartsAt = time.Now()
	}
	s.ID = fmt.Sprint("sil-", len(f.list)+1)
	f.list = append([]notifier.Silence{s}, f.list...)
	return s, nil
}

func (f *fakeSilences) Silences(expired bool) ([]notifier.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []notifier.Silence
	for _, s := range f.list {
		if expired || s.EndsAt.After(time.Now()) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeSilences) Silence(id string) (notifier.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.list {
		if s.ID == id {
			return s, nil
		}
	}
	return notifier.Silence{}, fmt.Errorf("silence %q: %w", id, notifier.ErrNotFound)
}

func (f *fakeSilences) ExpireSilence(id, by string) (notifier.Silence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.list {
		if s.ID == id {
			f.list[i].EndsAt, f.list[i].ExpiredBy = time.Now(), by
			return f.list[i], nil
		}
	}
	return notifier.Silence{}, fmt.Errorf("silence %q: %w", id, notifier.ErrNotFound)
}

func TestSilencesAPI(t *testing.T) {
	f := newAuthFixture(t)
	sil := &fakeSilences{}
	env := newTestEnv(t, f.withAuth, func(o *Options) { o.Silences = sil })
	dev, viewer := bearer(f.tokens["developer"]), bearer(f.tokens["viewer"])

	rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/silences", dev,
		strings.NewReader(`{"matchers": "{alertname=\"HighCPU\"}", "duration": "2h", "comment": "maintenance", "createdBy": "mallory"}`))
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	var created struct {
		Data notifier.Silence `json:"data"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &created))
	require.Equal(t, "dave", created.Data.CreatedBy, "an authenticated caller silences as itself")
	require.WithinDuration(t, time.Now().Add(2*time.Hour), created.Data.EndsAt, time.Minute)

	for body, want := range map[string]int{
		`{"matchers": "{alertname=\"X\"}"}`:                          http.StatusBadRequest,
		`{"matchers": "{alertname=\"X\"}", "duration": "-1h"}`:       http.StatusBadRequest,
		`{"matchers": "{alertname=\"X\"}", "duration": "soon"}`:      http.StatusBadRequest,
		`{"matchers": "", "duration": "1h"}`:                         http.StatusBadRequest,
		`{"matchers": "{alertname=\"X\"}", "duration": "1h", "x":1}`: http.StatusBadRequest,
	} {
		rec := serve(env.h, "127.0.0.1", http.MethodPost, "/api/v1/silences", dev, strings.NewReader(body))
		require.Equal(t, want, rec.Code, "%s: %s", body, rec.Body.String())
	}
	rec = serve(env.h, "127.0.0.2", http.MethodPost, "/api/v1/silences", viewer, strings.NewReader(`{"matchers": "{a=\"b\"}", "duration": "1h"}`))
	requireAPIError(t, rec, http.StatusForbidden, "forbidden")
	require.Len(t, sil.list, 1)

	rec = serve(env.h, "127.0.0.2", http.MethodGet, "/api/v1/silences", viewer, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "maintenance")

	rec = serve(env.h, "127.0.0.2", http.MethodDelete, "/api/v1/silences/"+created.Data.ID, viewer, nil)
	requireAPIError(t, rec, http.StatusForbidden, "forbidden")
	rec = serve(env.h, "127.0.0.1", http.MethodDelete, "/api/v1/silences/"+created.Data.ID, dev, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "dave", sil.list[0].ExpiredBy)
	rec = serve(env.h, "127.0.0.1", http.MethodDelete, "/api/v1/silences/nope", dev, nil)
	requireAPIError(t, rec, http.StatusNotFound, "not_found")
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/silences", dev, nil)
	require.NotContains(t, rec.Body.String(), "maintenance", "an expired silence is not listed by default")
	rec = serve(env.h, "127.0.0.1", http.MethodGet, "/api/v1/silences?expired=true", dev, nil)
	require.Contains(t, rec.Body.String(), "maintenance")
}

// TestPageSilence: a developer silences an incident's alert from the page
// and ends the silence; a viewer has neither button and is refused.
func TestPageSilence(t *testing.T) {
	f := newAuthFixture(t)
	sil := &fakeSilences{}
	env, incs := pageFixture(t, f)
	env.h.opts.Silences = sil
	inc := incs.m["inc-1"]
	inc.Alert.Labels = map[string]string{"alertname": "HighErrorRate", "app": "checkout"}
	incs.m["inc-1"] = inc

	viewer := newBrowser(t, env.srv.URL)
	vcsrf := viewer.signIn(f.tokens["viewer"])
	_, page := viewer.get("/")
	require.NotContains(t, page, `action="/ui/silences"`)
	resp, body := viewer.post("/ui/silences", url.Values{"csrf": {vcsrf}, "incident": {"inc-1"}, "duration": {"1h"}})
	requireStatus(t, resp, body, http.StatusForbidden)
	require.Empty(t, sil.list)

	dev := newBrowser(t, env.srv.URL)
	csrf := dev.signIn(f.tokens["developer"])
	_, page = dev.get("/")
	require.Contains(t, page, `action="/ui/silences"`)
	resp, body = dev.post("/ui/silences", url.Values{"csrf": {csrf}, "incident": {"inc-1"}, "duration": {"7h"}})
	requireStatus(t, resp, body, http.StatusBadRequest)
	resp, body = dev.post("/ui/silences", url.Values{"incident": {"inc-1"}, "duration": {"1h"}})
	requireStatus(t, resp, body, http.StatusForbidden)
	require.Empty(t, sil.list)

	resp, body = dev.post("/ui/silences", url.Values{"csrf": {csrf}, "incident": {"inc-1"}, "duration": {"4h"}, "comment": {"deploy in progress"}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	require.Len(t, sil.list, 1)
	require.Equal(t, `{alertname="HighErrorRate", app="checkout"}`, sil.list[0].Matchers, "the silence selects exactly the incident's alert")
	require.Equal(t, "dave", sil.list[0].CreatedBy)
	require.WithinDuration(t, time.Now().Add(4*time.Hour), sil.list[0].EndsAt, time.Minute)

	_, page = dev.get(resp.Header.Get("Location"))
	require.Contains(t, page, "is silenced")
	require.Contains(t, page, `<section id="silences">`)
	require.Contains(t, page, "deploy in progress")
	require.Contains(t, page, `action="/ui/silences/sil-1/expire"`)

	_, page = viewer.get("/")
	require.Contains(t, page, "deploy in progress", "viewers see silences")
	require.NotContains(t, page, `/expire"`, "but cannot end them")

	resp, body = dev.post("/ui/silences/sil-1/expire", url.Values{"csrf": {csrf}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	require.Equal(t, "dave", sil.list[0].ExpiredBy)
	_, page = dev.get(resp.Header.Get("Location"))
	require.Contains(t, page, "Silence ended")
	require.NotContains(t, page, `<section id="silences">`)

	// An incident of a group: the silence selects the labels its members
	// share, so it mutes the whole group, replicas to come included.
	inc.Members = []notifier.Member{
		{Fingerprint: "a", State: notifier.MemberFiring, Labels: map[string]string{"alertname": "HighErrorRate", "app": "checkout", "pod": "checkout-0"}},
		{Fingerprint: "b", State: notifier.MemberFiring, Labels: map[string]string{"alertname": "HighErrorRate", "app": "checkout", "pod": "checkout-1"}},
	}
	inc.Alert.Labels = inc.Members[0].Labels
	incs.m["inc-1"] = inc
	resp, body = dev.post("/ui/silences", url.Values{"csrf": {csrf}, "incident": {"inc-1"}, "duration": {"1h"}})
	requireStatus(t, resp, body, http.StatusSeeOther)
	require.Len(t, sil.list, 2)
	require.Equal(t, `{alertname="HighErrorRate", app="checkout"}`, sil.list[1].Matchers)
}
