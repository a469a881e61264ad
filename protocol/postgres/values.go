package postgres

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Default limits for what audit events record of a session.
const (
	// DefaultQueryLimit bounds the SQL text recorded per event.
	DefaultQueryLimit = 1 << 20
	// DefaultParamLimit bounds each recorded parameter or function
	// argument (its rendering: text, or "\x" and hexadecimal).
	DefaultParamLimit = 4 << 10
)

// truncatedMarker starts what replaces the cut end of a long value; the
// value's full size in bytes and ")" follow.
const truncatedMarker = "...(truncated, "

// markerMax is the longest marker: truncatedMarker, a number, " bytes)".
const markerMax = len(truncatedMarker) + 20 + len(" bytes)")

const hexDigits = "0123456789abcdef"

// formatCode returns the format code of value i of n under PostgreSQL's
// rule: no codes means all text, one code applies to all, otherwise one
// code per value.
func formatCode[T int16 | uint16](codes []T, i int) int {
	switch {
	case len(codes) == 0:
		return 0
	case len(codes) == 1:
		return int(codes[0])
	case i < len(codes):
		return int(codes[i])
	}
	return 0
}

// renderValues renders bound parameters or function arguments for audit:
// nil for SQL NULL, text (format 0) as UTF-8 when valid, everything else
// as "\x" followed by hexadecimal; each cut to limit bytes with a marker.
func renderValues[T int16 | uint16](values [][]byte, codes []T, limit int) []*string {
	if len(values) == 0 {
		return []*string{}
	}
	strs := make([]string, len(values))
	out := make([]*string, len(values))
	for i, v := range values {
		if v == nil {
			continue
		}
		strs[i] = renderValue(v, formatCode(codes, i) == 0, limit)
		out[i] = &strs[i]
	}
	return out
}

// renderValue renders one non-NULL value; see renderValues.
func renderValue(v []byte, text bool, limit int) string {
	if text && utf8.Valid(v) {
		if len(v) <= limit {
			return string(v)
		}
		cut := runeCut(v, limit)
		var b strings.Builder
		b.Grow(cut + markerMax)
		b.Write(v[:cut])
		writeMarker(&b, len(v))
		return b.String()
	}
	n := len(v)
	if 2+2*n > limit {
		n = max(limit-2, 0) / 2
	}
	var b strings.Builder
	size := 2 + 2*n
	if n < len(v) {
		size += markerMax
	}
	b.Grow(size)
	b.WriteString(`\x`)
	for _, c := range v[:n] {
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
	if n < len(v) {
		writeMarker(&b, len(v))
	}
	return b.String()
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
	writeMarker(&b, len(s))
	return b.String()
}

// runeCut returns the largest n <= limit such that v[:n] does not end in
// the middle of a UTF-8 sequence.
func runeCut(v []byte, limit int) int {
	cut := limit
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return cut
}

func writeMarker(b *strings.Builder, size int) {
	b.WriteString(truncatedMarker)
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], int64(size), 10))
	b.WriteString(" bytes)")
}
