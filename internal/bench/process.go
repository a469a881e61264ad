package bench

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// daemon is a `portcullis start` child process: Auth, proxy or agent.
type daemon struct {
	name    string
	bin     string
	config  string // the YAML file
	logPath string
	// diagAddr is its diagnostics endpoint (diag_addr), if it has one.
	diagAddr string

	proc *dbtest.Process
}

// start starts the daemon with its output appended to its log. It dies
// with the suite (Pdeathsig) if the suite is killed.
func (d *daemon) start() error {
	cmd := exec.Command(d.bin, "start", "--config", d.config)
	cmd.Dir = filepath.Dir(d.config)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := dbtest.StartProcess(cmd, d.logPath, syscall.SIGKILL)
	if err != nil {
		return fmt.Errorf("bench: start the %s: %w", d.name, err)
	}
	d.proc = p
	return nil
}

// pid is the running daemon's process ID.
func (d *daemon) pid() int { return d.proc.Pid() }

// running reports whether the daemon has not exited.
func (d *daemon) running() bool {
	if d.proc == nil {
		return false
	}
	select {
	case <-d.proc.Exited():
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the graceful shutdown, killing the
// daemon after timeout.
func (d *daemon) stop(timeout time.Duration) error {
	if !d.running() {
		return nil
	}
	if err := d.proc.Stop(syscall.SIGTERM, timeout); err != nil {
		return fmt.Errorf("bench: the %s: %w", d.name, err)
	}
	return nil
}

// exitError says that the daemon exited, with the end of its log.
func (d *daemon) exitError() error {
	return fmt.Errorf("bench: the %s exited (%v); its log %s ends:\n%s", d.name, d.proc.Err(), d.logPath, dbtest.LogTail(d.logPath, 20))
}
