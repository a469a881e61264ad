package audit

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"
)

// ZapEmitter logs each event at Info level on Logger: the message is the
// event type and every top-level JSON key of the event becomes a zap field
// with the same name, so the log carries the same schema as the audit file.
// The zero value works and discards events (nil Logger means zap.NewNop).
type ZapEmitter struct {
	// Logger receives the events; nil means a no-op logger.
	Logger *zap.Logger
	// Clock gives the time for events without one; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of event IDs; nil means crypto/rand.Reader.
	Rand io.Reader
}

// EmitAuditEvent implements [Emitter].
func (z *ZapEmitter) EmitAuditEvent(_ context.Context, e Event) error {
	if err := stamp(e, z.Clock, z.Rand); err != nil {
		return err
	}
	if z.Logger == nil {
		return nil
	}
	f, err := ToFields(e)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	zf := make([]zap.Field, 0, len(keys))
	for _, k := range keys {
		zf = append(zf, zapField(k, f[k]))
	}
	z.Logger.Info(f.Type(), zf...)
	return nil
}

// zapField converts one decoded JSON value to a zap field, keeping numbers
// numbers (zap.Any would log a json.Number as a string).
func zapField(key string, v any) zap.Field {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return zap.Int64(key, i)
		}
		if x, err := n.Float64(); err == nil {
			return zap.Float64(key, x)
		}
		return zap.String(key, n.String())
	}
	return zap.Any(key, v)
}
