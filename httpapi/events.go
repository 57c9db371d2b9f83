package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/meterd/meterd/meter"
)

// Limits of POST /v1/events. A thousand events of a few hundred bytes
// each fit well inside the body limit, which is larger than the 1 MiB of
// the other endpoints for that reason.
const (
	MaxBatchEvents     = 1000
	MaxEventsBodyBytes = 4 << 20
)

// eventsRequest is the body of POST /v1/events. Events stay raw so each
// one is decoded (and rejected) on its own.
type eventsRequest struct {
	Events []json.RawMessage `json:"events"`
}

// eventRequest is one event: a track body with a required id and an
// optional RFC 3339 timestamp.
type eventRequest struct {
	trackRequest
	Timestamp *string `json:"timestamp"`
}

// eventsResponse reports every event by its index in the request:
// duplicates and rejections are listed, the rest were accepted.
type eventsResponse struct {
	Accepted         int             `json:"accepted"`
	Duplicates       int             `json:"duplicates"`
	Rejected         []rejectedEvent `json:"rejected"`
	DuplicateIndexes []int           `json:"duplicate_indexes"`
}

type rejectedEvent struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// handleEvents records calls after the fact, without enforcement. The
// answer comes once every accepted event is committed; on a ledger error
// (503/500) the whole batch may be resent, and the events that did land
// come back as duplicates.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	var req eventsRequest
	if err := decodeJSON(w, r, &req, MaxEventsBodyBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Events) == 0 || len(req.Events) > MaxBatchEvents {
		s.writeError(w, r, meter.Invalid("events", "must hold 1 to %d events", MaxBatchEvents))
		return
	}
	resp := eventsResponse{Rejected: []rejectedEvent{}, DuplicateIndexes: []int{}}
	calls := make([]meter.BatchCall, 0, len(req.Events))
	index := make([]int, 0, len(req.Events))
	headerKey := s.apiKeyFrom(r)
	for i, raw := range req.Events {
		c, err := parseEvent(raw, headerKey)
		if err != nil {
			resp.reject(i, c.ID, err)
			continue
		}
		// An account_id without the service token refuses the whole
		// batch, not just the event: it is a credential problem.
		if err := s.checkAccountID(c.Call); err != nil {
			s.writeError(w, r, err)
			return
		}
		calls, index = append(calls, c), append(index, i)
	}
	outs, err := s.meter.RecordBatch(r.Context(), calls)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for j, o := range outs {
		switch i := index[j]; {
		case o.Err != nil:
			resp.reject(i, calls[j].ID, o.Err)
		case o.Duplicate:
			resp.Duplicates++
			resp.DuplicateIndexes = append(resp.DuplicateIndexes, i)
		default:
			resp.Accepted++
		}
	}
	sort.Slice(resp.Rejected, func(a, b int) bool { return resp.Rejected[a].Index < resp.Rejected[b].Index })
	writeJSON(w, http.StatusOK, resp)
}

func (resp *eventsResponse) reject(i int, id string, err error) {
	ae := classify(err)
	resp.Rejected = append(resp.Rejected, rejectedEvent{Index: i, ID: id, Code: ae.code, Reason: ae.message})
}

// parseEvent decodes one event strictly into a BatchCall; the call's ID
// is set even on error when the event carried one.
func parseEvent(raw json.RawMessage, headerKey string) (meter.BatchCall, error) {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return meter.BatchCall{}, &meter.ValidationError{Message: "event must be a JSON object"}
	}
	var ev eventRequest
	if err := DecodeStrict(bytes.NewReader(raw), &ev); err != nil {
		return meter.BatchCall{}, err
	}
	// The header's key stands in only for events that name no caller: an
	// event's own account_id is not overridden by it.
	if ev.AccountID != "" {
		headerKey = ""
	}
	call, err := ev.call(headerKey)
	bc := meter.BatchCall{Call: call}
	if err != nil {
		return bc, err
	}
	if ev.Timestamp != nil {
		t, err := time.Parse(time.RFC3339Nano, *ev.Timestamp)
		if err != nil {
			return bc, meter.Invalid("timestamp", "must be an RFC 3339 time such as 2026-03-10T12:00:00Z")
		}
		bc.Time = t
	}
	return bc, nil
}
