package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/meterd/meterd/meter"
)

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

var (
	errUnauthorized   = newError(http.StatusUnauthorized, "unauthorized", "missing or invalid credentials")
	errNotFound       = newError(http.StatusNotFound, "not_found", "no such route")
	errMethod         = newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this route")
	errBodyTooLarge   = newError(http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than allowed")
	errHeaderTooLarge = newError(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers are larger than allowed")
)

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// classify maps any error to its HTTP status, code and public message:
// the one place where domain errors meet HTTP.
func classify(err error) *apiError {
	var ae *apiError
	var ve *meter.ValidationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ve):
		return newError(http.StatusBadRequest, "invalid_request", ve.Error())
	case errors.As(err, &mbe):
		return errBodyTooLarge
	case errors.Is(err, meter.ErrUnknownKey):
		return newError(http.StatusUnauthorized, "invalid_api_key", "unknown or revoked API key")
	case errors.Is(err, meter.ErrAccountNotFound):
		return newError(http.StatusNotFound, "account_not_found", "account not found")
	case errors.Is(err, meter.ErrWebhookNotFound):
		return newError(http.StatusNotFound, "webhook_not_found", "webhook endpoint not found")
	case errors.Is(err, meter.ErrKeyNotFound):
		return newError(http.StatusNotFound, "key_not_found", "API key not found")
	case errors.Is(err, meter.ErrAccountExists):
		return newError(http.StatusConflict, "account_exists", "an account with this id already exists")
	case errors.Is(err, meter.ErrAccountDeleted):
		return newError(http.StatusConflict, "account_deleted", "the account is deleted and cannot change")
	case errors.Is(err, meter.ErrLimitReached):
		return newError(http.StatusForbidden, "limit_reached", err.Error())
	case errors.Is(err, meter.ErrDiskFull):
		return newError(http.StatusServiceUnavailable, "disk_full",
			"the ledger's disk is full or below its free-space floor; writes resume when space returns")
	case errors.Is(err, meter.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, "ledger_unavailable",
			"the ledger cannot commit right now; nothing was counted, retry shortly")
	case errors.Is(err, meter.ErrOverloaded):
		return newError(http.StatusServiceUnavailable, "overloaded", "the ledger is busy; retry shortly")
	case errors.Is(err, meter.ErrBillingBusy):
		return billingBusy(err)
	case errors.Is(err, meter.ErrBillingDisabled):
		return errBillingDisabled
	case errors.Is(err, meter.ErrQuotaUnavailable):
		return newError(http.StatusServiceUnavailable, "quota_unavailable",
			"the cluster's shared quota cannot be reached and this node holds no allowance; retry shortly")
	case errors.Is(err, meter.ErrSharedUnavailable):
		return newError(http.StatusServiceUnavailable, "cluster_unavailable",
			"the cluster's shared state cannot be reached; admin changes resume when it returns")
	case errors.Is(err, meter.ErrClosed):
		return newError(http.StatusServiceUnavailable, "shutting_down", "meterd is shutting down")
	}
	return newError(http.StatusInternalServerError, "internal", "internal error")
}

// writeError answers with the JSON error for err. Only internal errors are
// logged: the rest are the client's business.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err)
	if ae.status >= 500 && ae.status != http.StatusServiceUnavailable {
		s.log.ErrorContext(r.Context(), "request failed", "route", routeName(r),
			"request_id", RequestID(r.Context()), "error", err)
	}
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	writeJSON(w, ae.status, body)
}

// contentTypeJSON is shared by every JSON answer rather than allocated
// per answer; its capacity of one makes an Add copy instead of writing
// into it, and Set replaces it.
var contentTypeJSON = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = contentTypeJSON[:1:1]
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "error", err)
	}
}
