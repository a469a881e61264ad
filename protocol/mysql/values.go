package mysql

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Default limits for what audit events record of a session.
const (
	// DefaultQueryLimit bounds the SQL text (and schema names) recorded
	// per event.
	DefaultQueryLimit = 1 << 20
	// DefaultParamLimit bounds each recorded parameter (its rendering).
	DefaultParamLimit = 4 << 10
)

// truncatedMarker starts what replaces the cut end of a long value; the
// value's full size in bytes and ")" follow.
const truncatedMarker = "...(truncated, "

// markerMax is the longest marker: truncatedMarker, a number, " bytes)".
const markerMax = len(truncatedMarker) + 20 + len(" bytes)")

const hexDigits = "0123456789abcdef"

// renderText renders a string value for audit: as UTF-8 when it is valid
// UTF-8, otherwise as "\x" followed by hexadecimal; cut to limit bytes with
// a marker naming size, the value's full size (which may exceed len(v)
// when only a prefix of the value was kept).
func renderText(v []byte, size int64, limit int) string {
	if utf8.Valid(v) || (size > int64(len(v)) && validPrefix(v)) {
		if int64(len(v)) == size && len(v) <= limit {
			return string(v)
		}
		cut := min(len(v), limit)
		cut = runeCut(v, cut)
		var b strings.Builder
		b.Grow(cut + markerMax)
		b.Write(v[:cut])
		writeMarker(&b, size)
		return b.String()
	}
	return renderHex(v, size, limit)
}

// renderHex renders bytes as "\x" and hexadecimal, cut to limit.
func renderHex(v []byte, size int64, limit int) string {
	n := len(v)
	if 2+2*n > limit {
		n = max(limit-2, 0) / 2
	}
	var b strings.Builder
	grow := 2 + 2*n
	if int64(n) < size {
		grow += markerMax
	}
	b.Grow(grow)
	b.WriteString(`\x`)
	for _, c := range v[:n] {
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
	if int64(n) < size {
		writeMarker(&b, size)
	}
	return b.String()
}

// validPrefix reports whether v is valid UTF-8 up to a character that may
// have been cut at its end.
func validPrefix(v []byte) bool {
	for i := len(v) - 1; i >= 0 && i >= len(v)-utf8.UTFMax; i-- {
		if utf8.RuneStart(v[i]) {
			return utf8.Valid(v[:i])
		}
	}
	return utf8.Valid(v)
}

// truncateText cuts s to limit bytes (at a character boundary) and adds
// the marker; s itself when it fits.
func truncateText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	var b strings.Builder
	b.Grow(cut + markerMax)
	b.WriteString(s[:cut])
	writeMarker(&b, int64(len(s)))
	return b.String()
}

// runeCut returns the largest n <= limit such that v[:n] does not end in
// the middle of a UTF-8 sequence.
func runeCut(v []byte, limit int) int {
	if limit >= len(v) {
		return len(v)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return cut
}

func writeMarker(b *strings.Builder, size int64) {
	b.WriteString(truncatedMarker)
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], size, 10))
	b.WriteString(" bytes)")
}

// longDataMarker stands for a parameter sent with COM_STMT_SEND_LONG_DATA.
func longDataMarker(size int64) string {
	return "(long data, " + strconv.FormatInt(size, 10) + " bytes)"
}

// paramUnsigned is the flag in the second byte of a parameter type.
const paramUnsigned = gomysql.PARAM_UNSIGNED

// fixedSize returns the size of a binary-protocol value of type typ that
// has a fixed size, or -1 for types that are length-encoded or, for dates
// and times, carry their own length byte.
func fixedSize(typ byte) int {
	switch typ {
	case gomysql.MYSQL_TYPE_NULL:
		return 0
	case gomysql.MYSQL_TYPE_TINY:
		return 1
	case gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_YEAR:
		return 2
	case gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_INT24, gomysql.MYSQL_TYPE_FLOAT:
		return 4
	case gomysql.MYSQL_TYPE_LONGLONG, gomysql.MYSQL_TYPE_DOUBLE:
		return 8
	}
	return -1
}

// isTemporal reports whether values of typ are a length byte followed by
// that many bytes of date and time fields.
func isTemporal(typ byte) bool {
	switch typ {
	case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE, gomysql.MYSQL_TYPE_DATETIME,
		gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_DATETIME2, gomysql.MYSQL_TYPE_TIMESTAMP2,
		gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
		return true
	}
	return false
}

// renderFixed renders a fixed-size value (len(v) == fixedSize(typ)).
func renderFixed(typ byte, unsigned bool, v []byte) string {
	switch typ {
	case gomysql.MYSQL_TYPE_TINY:
		if unsigned {
			return strconv.FormatUint(uint64(v[0]), 10)
		}
		return strconv.FormatInt(int64(int8(v[0])), 10)
	case gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_YEAR:
		u := binary.LittleEndian.Uint16(v)
		if unsigned || typ == gomysql.MYSQL_TYPE_YEAR {
			return strconv.FormatUint(uint64(u), 10)
		}
		return strconv.FormatInt(int64(int16(u)), 10)
	case gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_INT24:
		u := binary.LittleEndian.Uint32(v)
		if unsigned {
			return strconv.FormatUint(uint64(u), 10)
		}
		return strconv.FormatInt(int64(int32(u)), 10)
	case gomysql.MYSQL_TYPE_LONGLONG:
		u := binary.LittleEndian.Uint64(v)
		if unsigned {
			return strconv.FormatUint(u, 10)
		}
		return strconv.FormatInt(int64(u), 10)
	case gomysql.MYSQL_TYPE_FLOAT:
		return strconv.FormatFloat(float64(math.Float32frombits(binary.LittleEndian.Uint32(v))), 'g', -1, 32)
	case gomysql.MYSQL_TYPE_DOUBLE:
		return strconv.FormatFloat(math.Float64frombits(binary.LittleEndian.Uint64(v)), 'g', -1, 64)
	}
	return renderHex(v, int64(len(v)), len(v)*2+2)
}

// renderTemporal renders the fields of a date, datetime or time value (the
// bytes after its length byte) as MySQL writes them: "2006-01-02",
// "2006-01-02 15:04:05[.000000]", "[-]838:59:59[.000000]". Bytes of a
// length no type uses are rendered in hexadecimal.
func renderTemporal(typ byte, v []byte) string {
	if typ == gomysql.MYSQL_TYPE_TIME || typ == gomysql.MYSQL_TYPE_TIME2 {
		switch len(v) {
		case 0:
			return "00:00:00"
		case 8, 12:
			sign := ""
			if v[0] == 1 {
				sign = "-"
			}
			days := binary.LittleEndian.Uint32(v[1:])
			hours := uint64(days)*24 + uint64(v[5])
			s := fmt.Sprintf("%s%02d:%02d:%02d", sign, hours, v[6], v[7])
			if len(v) == 12 {
				s += fmt.Sprintf(".%06d", binary.LittleEndian.Uint32(v[8:]))
			}
			return s
		}
		return renderHex(v, int64(len(v)), 2+2*len(v))
	}
	switch len(v) {
	case 0:
		return "0000-00-00 00:00:00"
	case 4, 7, 11:
		year := binary.LittleEndian.Uint16(v)
		s := fmt.Sprintf("%04d-%02d-%02d", year, v[2], v[3])
		if len(v) == 4 {
			if typ == gomysql.MYSQL_TYPE_DATE || typ == gomysql.MYSQL_TYPE_NEWDATE {
				return s
			}
			return s + " 00:00:00"
		}
		s += fmt.Sprintf(" %02d:%02d:%02d", v[4], v[5], v[6])
		if len(v) == 11 {
			s += fmt.Sprintf(".%06d", binary.LittleEndian.Uint32(v[7:]))
		}
		return s
	}
	return renderHex(v, int64(len(v)), 2+2*len(v))
}
