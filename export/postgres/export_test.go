package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/meterd/meterd/meter"
)

// SetAfterCommitFn installs the fault hook that runs between a batch's
// Postgres commit and the cursor move. Set it before Run or ExportOnce.
func (e *Exporter) SetAfterCommitFn(fn func() error) { e.afterCommitFn = fn }

// WriteBatch exposes writeBatch: it writes events to Postgres in one
// transaction, without reading or moving the ledger cursor.
func (e *Exporter) WriteBatch(ctx context.Context, events []meter.Event) (int64, error) {
	return e.writeBatch(ctx, events)
}

// StageColumns and NewStageRows let the benchmark COPY exactly the rows
// the exporter stages.
var StageColumns = stageColumns

func NewStageRows(events []meter.Event) pgx.CopyFromSource { return newStageRows(events) }
