package client

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-db/portcullis/ca/policy"
)

// LoginExpiredError says the user certificate has expired: nothing more can
// be done with the cluster until the person logs in again.
type LoginExpiredError struct {
	Username  string
	ProxyAddr string
	Expired   time.Time
}

func (e *LoginExpiredError) Error() string {
	return fmt.Sprintf("your login as %s at %s expired at %s; log in again with pcl login",
		e.Username, e.ProxyAddr, e.Expired.UTC().Format(time.RFC3339))
}

// IsLoginExpired reports whether err says the login has expired.
func IsLoginExpired(err error) bool {
	var e *LoginExpiredError
	return errors.As(err, &e)
}

// RouteErrorReason says why a database's route certificate cannot be used.
type RouteErrorReason int

const (
	// RouteNotLoggedIn: there is no route certificate for the database.
	RouteNotLoggedIn RouteErrorReason = iota + 1
	// RouteExpired: the route certificate expired; the login is still valid.
	RouteExpired
	// RouteStale: the route certificate was issued for the key of an
	// earlier login.
	RouteStale
	// RouteDamaged: the stored route files do not parse.
	RouteDamaged
)

// RouteError says the route certificate of a database is missing or not
// usable. Every reason is cured by [Profile.DatabaseLogin] for that
// database.
type RouteError struct {
	Database string
	Reason   RouteErrorReason
	// Expired is when the certificate expired (RouteExpired).
	Expired time.Time
}

func (e *RouteError) Error() string {
	again := "run pcl db login " + e.Database + " again"
	switch e.Reason {
	case RouteNotLoggedIn:
		return fmt.Sprintf("not logged in to database %q; run pcl db login %s first", e.Database, e.Database)
	case RouteExpired:
		return fmt.Sprintf("the certificate for database %q expired at %s; %s",
			e.Database, e.Expired.UTC().Format(time.RFC3339), again)
	case RouteStale:
		return fmt.Sprintf("the certificate for database %q belongs to an earlier login; %s", e.Database, again)
	default:
		return fmt.Sprintf("the stored certificate for database %q is damaged; %s", e.Database, again)
	}
}

// IsRouteError reports whether err says a database's route certificate is
// missing or unusable, so that a [Profile.DatabaseLogin] is needed.
func IsRouteError(err error) bool {
	var e *RouteError
	return errors.As(err, &e)
}

// ChoiceError says that a value (the db user or the db name) was not given
// and cannot be chosen for the person: none or several are possible.
type ChoiceError struct {
	Database string
	// What is "db user" or "db name".
	What string
	// Flag is the pcl flag that sets the value, e.g. "--db-user".
	Flag string
	// Choices are the values the login's traits list; empty when they list
	// none.
	Choices []string
}

func (e *ChoiceError) Error() string {
	if len(e.Choices) == 0 {
		return fmt.Sprintf("name the %s for database %q with %s (your login lists no %ss to pick from)",
			e.What, e.Database, e.Flag, e.What)
	}
	q := make([]string, len(e.Choices))
	for i, c := range e.Choices {
		q[i] = c
		if policy.ValidateName("value", c) != nil {
			q[i] = strconv.Quote(c)
		}
	}
	return fmt.Sprintf("choose the %s for database %q with %s; your login allows: %s",
		e.What, e.Database, e.Flag, strings.Join(q, ", "))
}

// IsChoiceError reports whether err asks the caller to choose a db user or
// db name.
func IsChoiceError(err error) bool {
	var e *ChoiceError
	return errors.As(err, &e)
}

// ClientNotInstalledError says the database client program (psql, mysql)
// is not on PATH.
type ClientNotInstalledError struct {
	// Program is what was looked for, e.g. "psql" or "mysql or mariadb".
	Program string
	// Package is the Debian package that provides it.
	Package string
}

func (e *ClientNotInstalledError) Error() string {
	return fmt.Sprintf("%s is not installed (not found on PATH); install the %s package, e.g. sudo apt-get install %s",
		e.Program, e.Package, e.Package)
}

// IsClientNotInstalled reports whether err says the database client program
// is missing.
func IsClientNotInstalled(err error) bool {
	var e *ClientNotInstalledError
	return errors.As(err, &e)
}
