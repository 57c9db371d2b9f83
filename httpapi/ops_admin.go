package httpapi

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// Maintenance is the ledger as the admin operations see it: a consistent
// snapshot of the live file, and a check that its numbers agree.
// *ledger.Ledger implements it; httpapi does not import ledger.
type Maintenance interface {
	// Backup streams a consistent snapshot of the ledger (a complete bbolt
	// file) to w and returns the bytes written.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	// VerifyJSON checks the ledger and returns its report, ready for JSON.
	VerifyJSON(ctx context.Context) (any, error)
}

// backupStallTimeout is how long one write of the backup stream may wait
// for a slow client. The stream as a whole has no deadline (a large ledger
// takes as long as it takes), but a client that stops reading must not
// hold the snapshot's read transaction open for ever.
const backupStallTimeout = time.Minute

// verifyWriteTimeout replaces the server's write timeout for a verify: a
// large ledger takes longer to check than an ordinary request may take.
const verifyWriteTimeout = 15 * time.Minute

func (s *Server) registerMaintenanceRoutes(r *mux.Router) {
	if s.maintenance == nil {
		return
	}
	r.HandleFunc("/api/admin/backup", s.requireAdmin(s.handleBackup)).Methods(http.MethodGet)
	r.HandleFunc("/api/admin/verify", s.requireAdmin(s.handleVerify)).Methods(http.MethodGet)
}

// handleBackup streams a snapshot of the live ledger as a download. The
// size is not known before the snapshot is taken, so the body is chunked:
// if the backup fails half-way the connection is cut, and the client sees
// a broken transfer rather than a short file that looks complete.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="meterd-`+start.UTC().Format("20060102T150405Z")+`.db"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	liftReadDeadline(rc)
	sw := &stallWriter{w: w, rc: rc}
	n, err := s.maintenance.Backup(r.Context(), sw)
	switch {
	case err == nil:
		s.log.InfoContext(r.Context(), "backup sent", "bytes", n, "took", time.Since(start))
	case sw.n == 0:
		h.Del("Content-Disposition")
		s.writeError(w, r, err)
	default:
		s.log.WarnContext(r.Context(), "backup aborted", "error", err, "bytes_sent", sw.n)
		// The status line is gone: aborting the handler is net/http's way
		// to reset the stream so the client cannot mistake it for whole.
		panic(http.ErrAbortHandler)
	}
}

// stallWriter gives every write of the backup stream its own deadline and
// counts what was sent.
type stallWriter struct {
	w  io.Writer
	rc *http.ResponseController
	n  int64
}

func (s *stallWriter) Write(p []byte) (int, error) {
	// Not every ResponseWriter supports deadlines (httptest's recorder does
	// not); the server's own write timeout then stays in force.
	_ = s.rc.SetWriteDeadline(time.Now().Add(backupStallTimeout))
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// handleVerify checks the live ledger and answers with the report; a
// report with problems is still a 200 (the check ran): read its "ok".
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	liftReadDeadline(rc)
	_ = rc.SetWriteDeadline(time.Now().Add(verifyWriteTimeout))
	rep, err := s.maintenance.VerifyJSON(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// liftReadDeadline clears the server's ReadTimeout for a long response:
// net/http keeps the whole-request read deadline while the handler runs,
// and when it passes, its background read fails and cancels the request's
// context, which would abort a backup or verify after ReadTimeout.
func liftReadDeadline(rc *http.ResponseController) {
	_ = rc.SetReadDeadline(time.Time{})
}
