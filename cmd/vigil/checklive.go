package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/rules"
)

// liveTimeout bounds the question to a running vigil.
const liveTimeout = 10 * time.Second

// checkConfigCmd parses `vigil check config [--live URL] [--token-file F]
// FILE...`: the files are checked, then the running vigil at URL is asked
// which of its rules are dead. Flags and files may come in any order.
func checkConfigCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil check config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	live := fs.String("live", "", "URL of a running vigil: list its rules whose inputs match no series")
	tokenFile := fs.String("token-file", "", "file holding the API token for --live (else $VIGIL_TOKEN)")
	// Flags may come before or after the files.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 && *live == "" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	code := 0
	if len(files) > 0 {
		code = checkConfig(files, stdout, stderr)
	}
	if *live != "" {
		token := os.Getenv("VIGIL_TOKEN")
		if *tokenFile != "" {
			// Bounded as the config's secret files: not /dev/zero or a
			// pipe read whole into memory.
			b, err := config.ReadSecretFile(*tokenFile)
			if err != nil {
				fmt.Fprintf(stderr, "vigil: --token-file: %v\n", err)
				return 1
			}
			token = strings.TrimSpace(string(b))
		}
		if c := checkLive(*live, token, stdout, stderr); c > code {
			code = c
		}
	}
	return code
}

// checkLive asks a running vigil for its dead rules (GET
// /api/v1/rules/dead) and lists them. Dead rules are warnings, not
// failures: the config is valid, the data is missing. It fails when vigil
// cannot be asked.
func checkLive(base, token string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "Checking live rules at %s\n", base)
	dead, err := fetchDeadRules(base, token)
	if err != nil {
		fmt.Fprintf(stderr, "  FAILED:\n  %v\n", err)
		return 1
	}
	if len(dead) == 0 {
		fmt.Fprintln(stdout, "  SUCCESS: every rule input matches series")
		return 0
	}
	fmt.Fprintf(stdout, "  %d rule inputs match no series; these rules cannot fire:\n", len(dead))
	for _, d := range dead {
		fmt.Fprintf(stdout, "  warning: %s: group %q rule %q: %s has matched no series since %s\n",
			d.File, d.Group, d.Rule, d.Selector, d.Since.UTC().Format(time.RFC3339))
	}
	return 0
}

func fetchDeadRules(base, token string) ([]rules.DeadRule, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--live %q is not an http(s) URL", base)
	}
	u = u.JoinPath("/api/v1/rules/dead")
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("%s answered %s: set VIGIL_TOKEN (or --token-file) to a token with view_metrics", u.Redacted(), resp.Status)
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s answered %s: that vigil is older than dead-rule reporting", u.Redacted(), resp.Status)
	default:
		return nil, fmt.Errorf("%s answered %s", u.Redacted(), resp.Status)
	}
	var body struct {
		Status string           `json:"status"`
		Data   []rules.DeadRule `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("reading %s: %w", u.Redacted(), err)
	}
	if body.Status != "success" {
		return nil, errors.New("vigil answered status " + body.Status)
	}
	return body.Data, nil
}
