package dbtest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// account is the system account that runs a server's programs.
type account struct {
	name       string
	uid, gid   int
	switchUser bool // run programs with uid/gid instead of the test's own
}

// currentAccount is the test process's own account.
func currentAccount() account {
	return account{uid: os.Geteuid(), gid: os.Getegid()}
}

// postgresAccount is the account PostgreSQL runs as: the test's own, or the
// `postgres` system account when the test runs as root (PostgreSQL refuses
// to run as root).
func postgresAccount() (account, error) {
	if os.Geteuid() != 0 {
		return currentAccount(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return account{}, &unavailableError{fmt.Sprintf("dbtest: PostgreSQL cannot run as root and there is no postgres system account (%v); run the tests as another user or install the Debian package postgresql, which creates it", err)}
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, fmt.Errorf("dbtest: postgres account uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return account{}, fmt.Errorf("dbtest: postgres account gid %q: %w", u.Gid, err)
	}
	return account{name: "postgres", uid: uid, gid: gid, switchUser: true}, nil
}

// chown gives root and everything under it to the account; it does nothing
// when the account is the test's own.
func (a account) chown(root string) error {
	if !a.switchUser {
		return nil
	}
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, a.uid, a.gid)
	})
	if err != nil {
		return fmt.Errorf("dbtest: give %s to the %s account: %w", root, a.name, err)
	}
	return nil
}

// command makes a command that runs as the account in its own process
// group, in dir.
func (a account) command(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv("LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if a.switchUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid), NoSetGroups: true}
	}
	return cmd
}

// run runs a short-lived program to completion and returns its combined
// output in the error when it fails.
func (a account) run(dir, name string, args ...string) error {
	cmd := a.command(dir, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dbtest: %s failed: %v\n%s", filepath.Base(name), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// A Process is a child process (a database server, or a daemon a tool
// runs) whose output goes to a log file and which dies with its parent.
type Process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // how it exited; valid once exited is closed
}

// StartProcess starts cmd with its stdout and stderr appended to logPath
// (created 0600). deathSignal is delivered to it if this process dies
// without stopping it.
func StartProcess(cmd *exec.Cmd, logPath string, deathSignal syscall.Signal) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dbtest: open the log of %s: %w", filepath.Base(cmd.Path), err)
	}
	defer logFile.Close()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = deathSignal

	p := &Process{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Linux sends Pdeathsig when the thread that forked the child
		// exits, not the process: keep this goroutine on its thread until
		// the server is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("dbtest: start %s: %w", filepath.Base(cmd.Path), err)
	}
	return p, nil
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited; valid once Exited is closed.
func (p *Process) Err() error { return p.waitErr }

// Stop sends sig and waits for the process to exit, killing it (and its
// process group) if it has not after timeout. It reports whether the
// graceful stop worked.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("dbtest: %s did not stop within %v of %v and was killed", filepath.Base(p.cmd.Path), timeout, sig)
}
