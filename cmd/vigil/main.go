// Command vigil is a monitoring and alerting sidecar: it scrapes, stores,
// evaluates alert rules and serves them over a Prometheus-compatible API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prometheus/common/version"

	"github.com/vigil-sh/vigil/auth"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/rules"
)

const usage = `Usage:
  vigil [--config FILE]            run (with no --config: the built-in default config)
  vigil check config [--live URL] FILE...
                                   validate config files; print every error found;
                                   --live URL also lists the rules a running vigil
                                   finds dead (inputs matching no series; token in
                                   VIGIL_TOKEN or --token-file)
  vigil test rules [--run RE]... [--ignore-unknown-fields] FILE...
                                   run rule unit tests in promtool's format
  vigil token new [--expires D]    print a fresh API token and the hash for users[].tokens;
                                   D (90d, 720h or 2027-03-01) makes the hash stop working then
  vigil demo                       play the whole loop on this machine in about two minutes
  vigil version                    print the version
`

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute dispatches the command line and returns the exit code.
func execute(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version", "-version":
			fmt.Fprintln(stdout, version.Print("vigil"))
			return 0
		case "check":
			if len(args) < 3 || args[1] != "config" {
				fmt.Fprint(stderr, usage)
				return 2
			}
			return checkConfigCmd(args[2:], stdout, stderr)
		case "test":
			if len(args) < 3 || args[1] != "rules" {
				fmt.Fprint(stderr, usage)
				return 2
			}
			return testRules(args[2:], stdout, stderr)
		case "token":
			return tokenNew(args[1:], stdout, stderr)
		case "demo":
			return demo(stdout, stderr)
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}

	fs := flag.NewFlagSet("vigil", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	configFile := fs.String("config", "", "configuration file; the built-in default when empty")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vigil: unexpected argument %q\n\n%s", fs.Arg(0), usage)
		return 2
	}
	return serve(*configFile, stderr)
}

// checkConfig validates each file and prints a summary or every error found.
func checkConfig(files []string, stdout, stderr io.Writer) int {
	code := 0
	for _, f := range files {
		cfg, err := config.Load(f)
		if err != nil {
			fmt.Fprintf(stderr, "Checking %s\n  FAILED:\n", f)
			printErrors(stderr, err)
			code = 1
			continue
		}
		rerr := rules.CheckConfig(cfg)
		if rerr == nil {
			rerr = auth.Check(cfg)
		}
		if rerr != nil {
			fmt.Fprintf(stderr, "Checking %s\n  FAILED:\n", f)
			printErrors(stderr, rerr)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "Checking %s\n  SUCCESS\n", f)
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stdout, "  warning: %s\n", w)
		}
		if w := auth.Warning(cfg); w != "" {
			fmt.Fprintf(stdout, "  warning: %s\n", w)
		}
		fmt.Fprintln(stdout, indent(cfg.Summary(), "  "))
	}
	return code
}

func printErrors(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "  %s\n", err)
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// testRules runs `vigil test rules` with promtool's flags: --run (repeatable)
// keeps the test groups whose name matches, --ignore-unknown-fields relaxes
// the rule files.
func testRules(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil test rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := rules.DefaultUnitTestOptions()
	fs.Func("run", "only run test groups whose names match this regular expression (repeatable)", func(s string) error {
		opts.Run = append(opts.Run, s)
		return nil
	})
	fs.BoolVar(&opts.IgnoreUnknownFields, "ignore-unknown-fields", false, "ignore unknown fields in rule files")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if rules.RunUnitTestsWith(opts, fs.Args(), stdout) {
		return 1
	}
	return 0
}
