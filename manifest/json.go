package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The JSON side of the manifest: its field types, and errors that name
// the field (encoding/json names the struct field only for type errors,
// and not at all for unknown keys).

// jsonError rewords encoding/json's errors to name the field. b is the
// manifest, searched for the path of an unknown field (encoding/json
// names only the key).
func jsonError(err error, b []byte) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && (te.Type == durationType || te.Type == sizeType):
		return fmt.Errorf("%s %s", te.Field, te.Value) // Value is the reason, from UnmarshalJSON
	case errors.As(err, &te) && te.Field != "":
		return fmt.Errorf("%s: want %s, not a JSON %s", te.Field, describeType(te.Type), te.Value)
	case errors.As(err, &te):
		return fmt.Errorf("want a JSON object, not a JSON %s", te.Value)
	case errors.As(err, &se):
		return fmt.Errorf("not valid JSON at byte %d: %w", se.Offset, err)
	case err == io.EOF:
		return errors.New("empty")
	case err == io.ErrUnexpectedEOF:
		return errors.New("not valid JSON: it ends too early")
	}
	if key, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		var v any
		if json.Unmarshal(b, &v) == nil {
			if p := unknownField(v, reflect.TypeFor[Manifest](), ""); p != "" {
				key = strconv.Quote(p)
			}
		}
		return fmt.Errorf("unknown field %s", key)
	}
	return err
}

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// describeType names what a Go type wants in JSON terms.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a non-negative integer"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	}
	return "an object"
}

// unknownField returns the dotted path of the first key in v (decoded
// JSON) that no field of t takes, or "" if there is none. Keys match
// json tags without regard to case, as encoding/json matches them.
func unknownField(v any, t reflect.Type, at string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return ""
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, _ := v.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			f, ok := jsonField(t, k)
			if !ok {
				return joinPath(at, k)
			}
			if p := unknownField(obj[k], f.Type, joinPath(at, k)); p != "" {
				return p
			}
		}
	case reflect.Slice:
		arr, _ := v.([]any)
		for i, e := range arr {
			if p := unknownField(e, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && strings.EqualFold(name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func joinPath(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

// Duration is a time.Duration written as "5s", "1m30s".
type Duration struct{ D time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.D.String()) }

// UnmarshalJSON reads a duration string. Its errors are
// *json.UnmarshalTypeError, so that encoding/json adds the field's path
// and Parse can say `restart.delay "5x": not a duration`.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return typeError(durationType, "%s: want a duration string (e.g. \"5s\")", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return typeError(durationType, "%q: not a duration (e.g. \"5s\")", s)
	}
	d.D = v
	return nil
}

// typeError is an error of UnmarshalJSON that encoding/json completes
// with the field's path; Value carries the reason (see jsonError).
func typeError(t reflect.Type, format string, v any) error {
	s := fmt.Sprint(v)
	if b, ok := v.([]byte); ok {
		s = string(b)
		if len(s) > 40 {
			s = s[:40] + "..."
		}
	}
	return &json.UnmarshalTypeError{Value: fmt.Sprintf(format, s), Type: t}
}

// IsZero lets omitzero leave an unset duration out.
func (d Duration) IsZero() bool { return d.D == 0 }

// Size is a byte count written as a number or "256M", "1G".
type Size uint64

func (s *Size) UnmarshalJSON(b []byte) error {
	var n uint64
	if json.Unmarshal(b, &n) == nil {
		if n == 0 {
			return typeError(sizeType, "%s: a limit of 0 leaves nothing to run with; leave the field out for no limit", b)
		}
		*s = Size(n)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return typeError(sizeType, "%s: want a size (e.g. \"256M\")", b)
	}
	v, err := ParseSize(str)
	if err != nil {
		return typeError(sizeType, "%s", err)
	}
	if v == 0 {
		return typeError(sizeType, "%q: a limit of 0 leaves nothing to run with; leave the field out for no limit", str)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses "512", "64K", "256M", "1G", "2T" (powers of 1024; a
// trailing "B" or "iB" is allowed).
func ParseSize(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if u, ok := strings.CutSuffix(t, "B"); ok {
		t = u
		if u, ok := strings.CutSuffix(t, "I"); ok && u != "" && strings.ContainsAny(u[len(u)-1:], "KMGT") {
			t = u // "KiB"
		}
	}
	mult := uint64(1)
	if i := strings.IndexAny(t, "KMGT"); i >= 0 && i == len(t)-1 {
		mult = 1 << (10 * (strings.IndexByte("KMGT", t[i]) + 1))
		t = t[:i]
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n > (1<<63)/mult {
		return 0, fmt.Errorf("%q: not a size (e.g. \"256M\")", s)
	}
	return n * mult, nil
}
