package main

import (
	"flag"
	"time"
)

// LedgerConfig tunes the ledger's checkpoints (ledger/checkpoint.go).
type LedgerConfig struct {
	// CheckpointEvents and CheckpointInterval: counters and aggregates are
	// written to the file after this many events or this long, whichever
	// comes first; they bound what a restart after a crash replays.
	CheckpointEvents   int
	CheckpointInterval time.Duration
}

func (c *LedgerConfig) bindLedgerFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.CheckpointEvents, "checkpoint-events", envInt("METER_CHECKPOINT_EVENTS", 100_000), "write counters and aggregates to the ledger after this many events; bounds the replay after a crash (env METER_CHECKPOINT_EVENTS)")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", envDuration("METER_CHECKPOINT_INTERVAL", 30*time.Second), "... or after this long with any event (env METER_CHECKPOINT_INTERVAL)")
}
