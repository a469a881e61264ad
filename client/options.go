package client

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// HomeEnv names the environment variable that overrides the profile
// directory.
const HomeEnv = "PORTCULLIS_HOME"

// DefaultHome is the profile directory: $PORTCULLIS_HOME, or
// ~/.portcullis when it is unset.
func DefaultHome() (string, error) {
	if h := os.Getenv(HomeEnv); h != "" {
		return h, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("client: cannot find the home directory (%v); set %s", err, HomeEnv)
	}
	return filepath.Join(home, ".portcullis"), nil
}

type config struct {
	home   string
	logger *slog.Logger
}

// An Option configures [Login] and [Signup].
type Option func(*config) error

// WithHome sets the profile directory (default [DefaultHome]).
func WithHome(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("client: WithHome: empty directory")
		}
		c.home = dir
		return nil
	}
}

// WithLogger sets the logger for debug messages (default: discard). Nothing
// secret is logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("client: WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

func newConfig(opts []Option) (*config, error) {
	c := &config{logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.home == "" {
		h, err := DefaultHome()
		if err != nil {
			return nil, err
		}
		c.home = h
	}
	return c, nil
}
