package mysql

import (
	"bytes"
	"regexp"
	"strconv"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// killStatement matches a whole KILL statement that names a connection:
// MySQL's KILL [CONNECTION | QUERY] id and MariaDB's
// KILL [HARD | SOFT] [CONNECTION | QUERY] id. (MariaDB's KILL QUERY ID
// names a query, not a connection, and does not match.)
var killStatement = regexp.MustCompile(`(?is)^(\s*kill\s+(?:(?:hard|soft)\s+)?(?:(?:connection|query)\s+)?)(\d{1,10})(\s*;?\s*)$`)

// translateKill returns the COM_QUERY payload (command byte included) to
// forward instead of query when query is a KILL of a connection ID that
// ConnIDs translates; nil otherwise.
func (d *decoder) translateKill(query []byte) []byte {
	if d.connIDs == nil {
		return nil
	}
	t := bytes.TrimLeft(query, " \t\r\n")
	if len(t) < 4 || !bytes.EqualFold(t[:4], []byte("kill")) {
		return nil
	}
	m := killStatement.FindSubmatch(query)
	if m == nil {
		return nil
	}
	id, err := strconv.ParseUint(string(m[2]), 10, 32)
	if err != nil {
		return nil
	}
	real, ok := d.connIDs(uint32(id))
	if !ok {
		return nil
	}
	out := make([]byte, 0, 1+len(query)+10)
	out = append(out, gomysql.COM_QUERY)
	out = append(out, m[1]...)
	out = strconv.AppendUint(out, uint64(real), 10)
	return append(out, m[3]...)
}
