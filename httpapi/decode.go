package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/meterd/meterd/meter"
)

// MaxBodyBytes caps request bodies (1 MiB); the batch endpoint may allow
// more.
const MaxBodyBytes = 1 << 20

// decodeJSON reads exactly one JSON object into v: unknown fields,
// trailing data and oversize bodies are errors, reported as a
// ValidationError naming what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return DecodeStrict(r.Body, v)
}

// DecodeStrict decodes exactly one JSON value from rd into v.
func DecodeStrict(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return &meter.ValidationError{Message: "request body must hold exactly one JSON object"}
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return &meter.ValidationError{Message: "request body is empty"}
	case errors.As(err, &syn):
		return &meter.ValidationError{Message: fmt.Sprintf("malformed JSON at byte %d", syn.Offset)}
	case errors.As(err, &typ):
		return &meter.ValidationError{Field: typ.Field, Message: "must be a " + typ.Type.String()}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &meter.ValidationError{Message: "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")}
	}
	return &meter.ValidationError{Message: "malformed JSON"}
}
