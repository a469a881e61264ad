package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/portcullis-db/portcullis/client"
)

// app is one run of pcl: its streams and environment.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	now    func() time.Time

	// lookPath finds programs (psql, mysql); runClient runs one with the
	// streams set and returns its exit code.
	lookPath  func(file string) (string, error)
	runClient func(cmd *exec.Cmd) (int, error)

	lines *bufio.Reader // stdin, read line by line
}

// exitCodeError makes pcl exit with code, printing nothing: the program
// pcl ran (psql) has said what went wrong.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes pcl with args and returns the exit code. Errors are
// printed to stderr as one sentence.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	return newApp(stdin, stdout, stderr, getenv).execute(ctx, args)
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{
		stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now,
		lookPath: exec.LookPath, runClient: runClient,
		lines: bufio.NewReader(stdin),
	}
}

// execute runs the command line args and returns the exit code.
func (a *app) execute(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var ec *exitCodeError
		if errors.As(err, &ec) {
			return ec.code
		}
		msg := message(err)
		if strings.HasPrefix(msg, "unknown command") {
			msg += "; run pcl --help for the commands"
		}
		fmt.Fprintf(a.stderr, "error: %s\n", msg)
		return 1
	}
	return 0
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pcl",
		Short: "Log in to a Portcullis cluster and reach its databases",
		Long: "pcl logs you in to a Portcullis cluster and connects you to its databases. The profile lives in $" + client.HomeEnv +
			" (default ~/.portcullis).",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v; see %s --help", err, c.CommandPath())
	})
	root.AddCommand(a.loginCmd(), a.statusCmd(), a.logoutCmd(), a.signupCmd(), a.dbCmd(), a.benchCmd())
	return root
}

// home is the profile directory.
func (a *app) home() (string, error) {
	if h := a.getenv(client.HomeEnv); h != "" {
		return h, nil
	}
	return client.DefaultHome()
}

// terminal returns stdin's file descriptor if stdin is a terminal.
func (a *app) terminal() (int, bool) {
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	return int(f.Fd()), true
}

// interruptible runs read, which may block on the terminal, and gives up
// when ctx ends (Ctrl-C): then the terminal's state is restored, as a
// read without echo leaves it otherwise, and the read is abandoned to the
// exiting process.
func (a *app) interruptible(ctx context.Context, read func() (string, error)) (string, error) {
	if fd, ok := a.terminal(); ok {
		if state, err := term.GetState(fd); err == nil {
			defer term.Restore(fd, state)
		}
	}
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := read()
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-ctx.Done():
		fmt.Fprintln(a.stderr)
		return "", errors.New("interrupted")
	}
}

// readLine reads the next line of stdin.
func (a *app) readLine(ctx context.Context, what string) (string, error) {
	return a.interruptible(ctx, func() (string, error) {
		line, err := a.lines.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the %s from stdin: %w", what, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", fmt.Errorf("no %s on stdin", what)
		}
		return line, nil
	})
}

// password reads a password from stdin (fromStdin) or from the terminal
// without echo; confirm asks twice.
func (a *app) password(ctx context.Context, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		return a.readLine(ctx, "password")
	}
	fd, ok := a.terminal()
	if !ok {
		return "", errors.New("stdin is not a terminal to ask for the password on; pass it on stdin with --password-stdin")
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(a.stderr, prompt)
		return a.interruptible(ctx, func() (string, error) {
			pw, err := term.ReadPassword(fd)
			fmt.Fprintln(a.stderr)
			if err != nil {
				return "", fmt.Errorf("reading the password: %w", err)
			}
			return string(pw), nil
		})
	}
	pw, err := read("Password: ")
	if err != nil || !confirm {
		return pw, err
	}
	again, err := read("Password again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ; run the command again")
	}
	return pw, nil
}

// code asks for a one-time code: on the terminal, or the next line of
// stdin when stdin is not one. hint says how else to pass it.
func (a *app) code(ctx context.Context, prompt, hint string) (string, error) {
	if _, ok := a.terminal(); ok {
		fmt.Fprint(a.stderr, prompt)
	}
	code, err := a.readLine(ctx, "one-time code")
	if err != nil {
		return "", fmt.Errorf("%w; %s", err, hint)
	}
	return strings.TrimSpace(code), nil
}

// message is err as one line for a person, without Go package prefixes.
func message(err error) string {
	msg := err.Error()
	for _, p := range []string{"authclient: ", "ca: ", "policy: ", "client: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return strings.Join(strings.Fields(msg), " ")
}

// noArgs refuses positional arguments with a sentence.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q; usage: %s", cmd.CommandPath(), args[0], cmd.UseLine())
	}
	return nil
}
